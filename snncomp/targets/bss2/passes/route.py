"""``route``: sources -> PADI buses, driver allocation, row modes, labels, crossbar; the ``HardwareConfig``."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from ....passes import Pass, PassContext, annotate_edge, annotate_graph, register
from .._annotations import HwParams, ParameterMap, Quantization, Routed
from .._plan import RowPlan, plan_rows
from .._problem import Placement, Problem, chip_of, describe_neurons
from ..check import check_config
from ..chip import ChipSpec
from ..config import (
    Backend,
    BackgroundSource,
    CrossbarNode,
    DriverConfig,
    ExternalSource,
    HardwareConfig,
    NeuronConfig,
    PopulationMap,
    ProjectionMap,
    Readout,
    SynapseRow,
)
from ..errors import ConfigError, ResourceError, Violation

__all__ = ["READOUT_KEY", "Route", "allocate_drivers"]

READOUT_KEY = "bss2.readout"


def _eligible(r: int, others: list[int], n_drivers: int, full: int) -> list[int]:
    """Drivers ``j`` whose widest mask accepting row select ``r`` rejects every other used row select.

    With mask ``~(j ^ r)`` a driver accepts exactly the row selects that agree with ``r`` wherever ``j``
    does; another row select ``x`` slips through iff it differs from ``r`` only where ``j`` does.
    """
    return [j for j in range(n_drivers) if all(((x ^ r) & ~(j ^ r) & full) for x in others)]


def allocate_drivers(
    chip: ChipSpec, groups: list[tuple[int | None, int]]
) -> tuple[list[int], list[list[tuple[int, int]]]] | None:
    """Row selects and drivers for the groups of one PADI bus.

    ``groups[k] = (row_select or None, drivers needed)``; ``None`` lets the allocator choose (external
    sources). Returns the row select of each group and its ``(bus index, row mask)`` drivers, or None
    when no assignment exists. Free row selects are chosen to keep every group's eligible drivers
    plentiful; drivers are then matched to groups (bipartite matching with augmenting paths).
    """
    J = chip.drivers_per_bus
    full = (1 << chip.row_select_bits) - 1
    rs: list[int | None] = [r for r, _ in groups]
    need = [n for _, n in groups]
    for i in sorted(range(len(groups)), key=lambda k: (-need[k], k)):
        if rs[i] is not None:
            continue
        used = [r for r in rs if r is not None]
        best = None
        for cand in range(full + 1):
            if cand in used:
                continue
            now = [*used, cand]
            idx = [k for k in range(len(groups)) if rs[k] is not None] + [i]
            slack = min(len(_eligible(r, [x for x in now if x != r], J, full)) - need[k] for r, k in zip(now, idx))
            score = (slack, -bin(cand).count("1") if not used else 0, -cand)
            if best is None or score > best[0]:
                best = (score, cand)
        if best is None:
            return None
        rs[i] = best[1]
    final = [int(r) for r in rs]  # type: ignore[arg-type]
    elig = [_eligible(r, [x for x in final if x != r], J, full) for r in final]
    owner = [-1] * J

    def augment(g: int, seen: set[int]) -> bool:
        for j in elig[g]:
            if j in seen:
                continue
            seen.add(j)
            if owner[j] < 0 or augment(owner[j], seen):
                owner[j] = g
                return True
        return False

    for g in sorted(range(len(groups)), key=lambda k: (len(elig[k]), k)):
        for _ in range(need[g]):
            if not augment(g, set()):
                return None
    drivers: list[list[tuple[int, int]]] = [[] for _ in groups]
    for j, g in enumerate(owner):
        if g >= 0:
            drivers[g].append((j, ~(j ^ final[g]) & full))
    return final, drivers


def _cumcount(keys: np.ndarray) -> np.ndarray:
    from .._plan import _cumcount as cc

    return cc(keys)


@register
@dataclass(frozen=True)
class Route(Pass):
    """Turn a placement into a complete, checked ``HardwareConfig`` (graph annotation ``hardware_config``).

    1. Rows: the exact row plan (see ``place``); any exceeded limit -- circuits' fan-in (256 rows, 64 per
       PADI bus), rows and drivers per bus, rows per hemisphere, labels per group -- fails here, all
       at once, naming the resource, demand, limit and the responsible populations.
    2. Labels: an on-chip neuron at column ``c`` of hemisphere ``h`` gets synapse label
       ``c % 32 + 32 h`` (unique in its event output); the two address-out bits above it select its
       row-select address (0b00 for event outputs 0-3, 0b11 for 4-7; neurons that feed no synapse get
       another value, which the crossbar filters). External sources get a label per group they join:
       bus number in bits 13..11 (the FPGA crossbar nodes filter on it), a free row select, a label.
    3. Drivers: per PADI bus, row selects and row masks are chosen so that each driver accepts its own
       group's row select and no other (``allocate_drivers``); each driver's two rows get the sign they
       carry (excitatory rows first), unused rows are disabled.
    4. Synapses: each slot takes the next free row of its group and sign in its column.
    5. Crossbar: neuron event output -> PADI bus nodes pass that output's source neurons, FPGA channel
       ``o % 4`` -> bus ``o`` nodes pass labels addressed to bus ``o``, event output -> FPGA nodes record
       every ``lif`` neuron; every other node drops all events.

    Finally every configuration-level rule of spec §5.2 is checked on the result (``check_config``).
    MADC recording is requested with the metadata key ``bss2.readout``: ``{"madc": [["pop", i]],
    "cadc_memory": "sram" | "dram"}``; ``li`` populations are read out by the CADC.
    """

    name = "route"
    requires = ("placement", "quantized", "hw-parameters")
    ensures = ("routing", "hardware-config")

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        chip = chip_of(g, ctx.options)
        problem = Problem.from_graph(g, chip)
        placement = Placement.from_graph(g, problem)
        plan = plan_rows(problem, placement)
        readout, readout_problems = self._readout(g, problem)
        problems = plan.violations + readout_problems
        if problems:
            raise ResourceError(f"network '{g.graph['name']}' does not fit on the chip", problems)
        for key in problem.skipped:
            ctx.remark(f"{key}: the source is an li readout, which never spikes; the projection gets no synapses")
        config, _slot_rows, bus_names = self._build(g, problem, placement, plan, readout)
        bad = check_config(config)
        if bad:
            raise ConfigError("route built a configuration that breaks chip rules (a bug in route)", bad)
        edge_index = {e.key: i for i, e in enumerate(problem.edges)}
        for u, v, key in g.edges(keys=True):
            sel = problem.s_edge == edge_index[key]
            buses = tuple(sorted({bus_names[int(x)] for x in plan.slot_group[sel]}))
            annotate_edge(g, u, v, key, routing=Routed(synapses=int(sel.sum()), buses=buses))
        from ..report import resource_report

        report = resource_report(config)
        annotate_graph(g, hardware_config=config, resources=report)
        ctx.remark(report.summary())
        return g

    # -- readout -----------------------------------------------------------------------------------------------
    @staticmethod
    def _readout(g: nx.MultiDiGraph, problem: Problem) -> tuple[Readout, list[Violation]]:
        raw = g.graph["metadata"].get(READOUT_KEY) or {}
        bad: list[Violation] = []
        madc: list[tuple[str, int]] = []
        memory = "sram"
        if not isinstance(raw, dict) or set(raw) - {"madc", "cadc_memory"}:
            bad.append(
                Violation(f"metadata['{READOUT_KEY}']", detail="expected {'madc': [[pop, i]], 'cadc_memory': ...}")
            )
        else:
            for item in raw.get("madc", []):
                ok = (
                    isinstance(item, list)
                    and len(item) == 2
                    and item[0] in problem.kinds
                    and problem.kinds[item[0]] != "input"
                    and isinstance(item[1], int)
                    and 0 <= item[1] < problem.sizes[item[0]]
                )
                if not ok:
                    bad.append(
                        Violation(
                            f"metadata['{READOUT_KEY}'].madc entry {item!r}", detail="expected [population, index]"
                        )
                    )
                else:
                    madc.append((item[0], item[1]))
            memory = raw.get("cadc_memory", "sram")
            if memory not in ("sram", "dram"):
                bad.append(
                    Violation(f"metadata['{READOUT_KEY}'].cadc_memory", detail="'sram' or 'dram' (not both)", check=4)
                )
                memory = "sram"
        if len(madc) > problem.chip.madc_neurons:
            bad.append(
                Violation(
                    "neurons recorded by the MADC",
                    len(madc),
                    problem.chip.madc_neurons,
                    tuple(f"{p}[{i}]" for p, i in madc),
                    check=4,
                    hint="the MADC records one neuron per experiment; record the others by the CADC",
                )
            )
        cadc = tuple(p for p in problem.pops if problem.kinds[p] == "li")
        return Readout(cadc=cadc, cadc_memory=memory, madc=tuple(madc)), bad

    # -- configuration -----------------------------------------------------------------------------------------
    def _build(
        self, g: nx.MultiDiGraph, problem: Problem, placement: Placement, plan: RowPlan, readout: Readout
    ) -> tuple[HardwareConfig, np.ndarray, dict[int, str]]:
        chip = problem.chip
        H, R, C = chip.hemispheres, chip.rows_per_hemisphere, chip.columns
        B, E, cpe, rpd = (
            chip.buses_per_hemisphere,
            chip.event_outputs,
            chip.columns_per_event_output,
            chip.rows_per_driver,
        )
        lbits, rsbits = chip.label_bits, chip.row_select_bits
        hi_bits = chip.address_out_bits - lbits
        hi_max = (1 << hi_bits) - 1
        full_rs = (1 << rsbits) - 1

        is_source = np.zeros(problem.n_neurons, bool)
        is_source[problem.s_src[~problem.external[problem.s_src]]] = True
        col, hem = placement.column, placement.hemisphere
        block = np.where(col >= 0, col // cpe, -1)
        x_block = np.where(block >= B, hi_max, 0)  # address-out high bits of sources, per event output half
        sl_internal = np.where(col >= 0, col % cpe + cpe * hem, 0)

        def rs_of_block(e: int) -> int:
            return (e << hi_bits) | (hi_max if e >= B else 0)

        # Drivers per bus.
        driver_of_group: list[list[tuple[int, int]]] = [[] for _ in plan.groups]
        rs_of_group = [0] * len(plan.groups)
        failures: list[Violation] = []
        for h in range(H):
            for b in range(B):
                idx = [k for k, gr in enumerate(plan.groups) if gr.hemisphere == h and gr.bus == b]
                if not idx:
                    continue
                req = [
                    (
                        None if plan.groups[k].external else rs_of_block(plan.groups[k].block),
                        plan.groups[k].n_drivers(rpd),
                    )
                    for k in idx
                ]
                got = allocate_drivers(chip, req)
                if got is None:
                    failures.append(
                        Violation(
                            f"row-select addresses on PADI bus {b} of hemisphere {h}",
                            detail=f"no driver/row-mask assignment for groups needing {[n for _, n in req]} drivers",
                            responsible=tuple(describe_neurons(problem, plan.groups[k].sources) for k in idx),
                            check=13,
                            hint="fewer source groups on this bus",
                        )
                    )
                    continue
                rs_list, drv = got
                for k, r, d in zip(idx, rs_list, drv):
                    rs_of_group[k], driver_of_group[k] = r, d
        if failures:
            raise ResourceError(f"network '{g.graph['name']}' does not fit on the chip", failures)

        # Rows of each group, excitatory first.
        row_modes = np.zeros((H, R), np.int8)
        masks: dict[tuple[int, int], int] = {}
        flat: list[int] = []
        offset = np.zeros(2 * len(plan.groups), np.int64)
        for k, gr in enumerate(plan.groups):
            rows = [(j * B + gr.bus) * rpd + q for j, _ in sorted(driver_of_group[k]) for q in range(rpd)]
            for j, m in driver_of_group[k]:
                masks[(gr.hemisphere, j * B + gr.bus)] = m
            exc, inh = gr.rows
            offset[2 * k] = len(flat)
            flat.extend(rows[:exc])
            offset[2 * k + 1] = len(flat)
            flat.extend(rows[exc : exc + inh])
            row_modes[gr.hemisphere, rows[:exc]] = 1
            row_modes[gr.hemisphere, rows[exc : exc + inh]] = 2
        flat_arr = np.array(flat, np.int64)

        # Slot -> row; slot label.
        n = problem.n_slots
        sg, sign = plan.slot_group, problem.s_sign
        pos = _cumcount((sg * 2 + sign) * C + plan.slot_column)
        slot_row = flat_arr[offset[sg * 2 + sign] + pos] if n else np.zeros(0, np.int64)
        slot_h = hem[problem.s_tgt]
        slot_label = np.zeros(n, np.int64)
        ext_slot = problem.external[problem.s_src]
        slot_label[~ext_slot] = sl_internal[problem.s_src[~ext_slot]]
        for k, gr in enumerate(plan.groups):
            if gr.external:
                sel = sg == k
                slot_label[sel] = np.searchsorted(gr.sources, problem.s_src[sel])

        # Synapse arrays: enabled rows get the group's spare label where no slot sits.
        weights = np.zeros((H, R, C), np.uint8)
        labels = np.zeros((H, R, C), np.uint8)
        block_labels = {e: set(sl_internal[(block == e) & is_source].tolist()) for e in range(E)}
        for k, gr in enumerate(plan.groups):
            used = set(range(len(gr.sources))) if gr.external else block_labels[gr.block]
            spare = next((x for x in range(chip.labels) if x not in used), 0)
            rows = flat_arr[offset[2 * k] : offset[2 * k] + gr.n_rows()]
            labels[gr.hemisphere, rows, :] = spare
        weights[slot_h, slot_row, plan.slot_column] = problem.s_weight
        labels[slot_h, slot_row, plan.slot_column] = slot_label

        pmap: ParameterMap = g.graph["ann"]["hw_params"]
        quant: Quantization = g.graph["ann"]["quantization"]
        drivers = []
        names = {0: "disabled", 1: "excitatory", 2: "inhibitory"}
        for h in range(H):
            for d in range(chip.drivers_per_hemisphere):
                m0, m1 = row_modes[h, d * rpd], row_modes[h, d * rpd + 1]
                if (h, d) in masks or m0 or m1:
                    drivers.append(
                        DriverConfig(
                            hemisphere=h,
                            driver=d,
                            row_mask=masks.get((h, d), full_rs),
                            row_modes=(names[int(m0)], names[int(m1)]),
                        )
                    )
        syn_rows = [
            SynapseRow(
                hemisphere=h, row=int(r), weights=weights[h, r].tobytes().hex(), labels=labels[h, r].tobytes().hex()
            )
            for h in range(H)
            for r in np.nonzero(row_modes[h])[0]
        ]

        # Neurons.
        neurons: list[NeuronConfig] = []
        populations: dict[str, PopulationMap] = {}
        external: list[ExternalSource] = []
        ext_labels: dict[int, list[int]] = {}
        for k, gr in enumerate(plan.groups):
            if not gr.external:
                continue
            o = chip.padi_output(gr.hemisphere, gr.bus)
            channel = o % chip.fpga_input_channels
            for i, s in enumerate(gr.sources.tolist()):
                label14 = (o << (lbits + rsbits)) | (rs_of_group[k] << lbits) | i
                ext_labels.setdefault(s, []).append((channel << chip.neuron_label_bits) | label14)
        recorded_blocks: set[int] = set()
        for pop in problem.pops:
            kind = problem.kinds[pop]
            ids = problem.ids(pop)
            if kind == "input":
                start = len(external)
                for i, nid in enumerate(ids.tolist()):
                    external.append(ExternalSource(population=pop, index=i, labels=tuple(ext_labels.get(nid, ()))))
                populations[pop] = PopulationMap(kind=kind, size=len(ids), neurons=tuple(range(start, len(external))))
                continue
            hw: HwParams = g.nodes[pop]["ann"]["hw"]
            start = len(neurons)
            for i, nid in enumerate(ids.tolist()):
                e = int(block[nid])
                x = int(x_block[nid]) if is_source[nid] else int(x_block[nid]) ^ 1
                if hw.fire:
                    recorded_blocks.add(e)
                neurons.append(
                    NeuronConfig(
                        population=pop,
                        index=i,
                        hemisphere=int(hem[nid]),
                        column=int(col[nid]),
                        width=int(placement.width[nid]),
                        event_output=e,
                        address_out=(x << lbits) | int(sl_internal[nid]),
                        fire=hw.fire,
                        recorded=hw.fire,
                        v_leak=float(hw.v_leak[i]),
                        v_reset=float(hw.v_reset[i]),
                        v_threshold=float(hw.v_threshold[i]),
                        tau_mem=float(hw.tau_mem[i]),
                        tau_syn_exc=float(hw.tau_syn[i]),
                        tau_syn_inh=float(hw.tau_syn[i]),
                        refractory_clock="slow" if hw.refractory_clock[i] else "fast",
                        refractory_counter=int(hw.refractory_counter[i]),
                        refractory_time=float(hw.refractory[i]),
                        max_spikes=hw.max_spikes,
                    )
                )
            populations[pop] = PopulationMap(kind=kind, size=len(ids), neurons=tuple(range(start, len(neurons))))

        # Crossbar.
        nodes: set[tuple[int, int, int, int]] = set()
        rs_field = full_rs << lbits
        for gr in plan.groups:
            o = chip.padi_output(gr.hemisphere, gr.bus)
            if gr.external:
                inp = E + o % chip.fpga_input_channels
                nodes.add(
                    (inp, o, ((1 << chip.neuron_label_bits) - 1) ^ ((1 << (lbits + rsbits)) - 1), o << (lbits + rsbits))
                )
            else:
                nodes.add((gr.block, o, rs_field, rs_of_block(gr.block) << lbits))
        fpga_out0 = H * B
        rec_mask = ((1 << (E - 1).bit_length()) - 1) << chip.address_out_bits  # the event-output bits
        for e in sorted(recorded_blocks):
            nodes.add((e, fpga_out0 + e % chip.fpga_output_channels, rec_mask, e << chip.address_out_bits))
        crossbar = [CrossbarNode(input=a, output=b, mask=m, target=t) for a, b, m, t in sorted(nodes)]

        projections: dict[str, ProjectionMap] = {}
        order = np.lexsort((problem.s_j, problem.s_i, problem.s_sign, problem.s_edge))
        edge_sorted = problem.s_edge[order]
        bounds = np.searchsorted(edge_sorted, np.arange(len(problem.edges) + 1))
        for k, info in enumerate(problem.edges):
            sel = order[bounds[k] : bounds[k + 1]]
            projections[info.key] = ProjectionMap(
                source=info.source,
                target=info.target,
                pre=problem.s_i[sel].tolist(),
                post=problem.s_j[sel].tolist(),
                sign=problem.s_sign[sel].tolist(),
                hemisphere=slot_h[sel].tolist(),
                row=slot_row[sel].tolist(),
                column=plan.slot_column[sel].tolist(),
                weight=problem.s_weight[sel].tolist(),
            )
        config = HardwareConfig(
            network=g.graph["name"],
            chip=chip,
            speedup=pmap.speedup,
            v_offset=pmap.v_offset,
            v_scale=pmap.v_scale,
            weight_scale=quant.scale,
            weight_bits=quant.bits,
            runtime=pmap.runtime,
            membrane_capacitance=chip.membrane_capacitance,
            i_synin_gm=chip.i_synin_gm,
            synapse_dac_bias=chip.synapse_dac_bias,
            backends=tuple(
                Backend(hemisphere=h, fast_clock=pmap.refractory_clocks[0], slow_clock=pmap.refractory_clocks[1])
                for h in range(H)
            ),
            neurons=tuple(neurons),
            drivers=tuple(drivers),
            rows=tuple(syn_rows),
            crossbar=tuple(crossbar),
            external=tuple(external),
            background=tuple(BackgroundSource(index=k) for k in range(chip.background_generators)),
            readout=readout,
            populations=populations,
            projections=projections,
        )
        bus_names = {k: f"h{gr.hemisphere}b{gr.bus}" for k, gr in enumerate(plan.groups)}
        return config, slot_row, bus_names
