"""``route``: sources -> PADI buses, driver allocation, row modes, labels, crossbar; the ``HardwareConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from ....passes import Pass, PassContext, annotate_edge, annotate_graph, register
from .._annotations import HwParams, ParameterMap, Quantization, Routed
from .._drivers import internal_row_select
from .._plan import RowPlan, plan_rows
from .._problem import Placement, Problem, chip_of
from ..check import check_config
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
    RowMode,
    SynapseRow,
)
from ..errors import ConfigError, ResourceError, Violation

__all__ = ["READOUT_KEY", "Route"]

READOUT_KEY = "bss2.readout"


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
       every spiking (``lif``, ``if``) neuron; every other node drops all events.

    Finally every configuration-level rule of spec §5.2 is checked on the result (``check_config``).
    MADC recording is requested with the metadata key ``bss2.readout``: ``{"madc": [["pop", i]],
    "cadc_memory": "sram" | "dram"}``; ``li`` populations are read out by the CADC.
    """

    name = "route"
    requires = ("placement", "quantized", "hw-parameters")
    ensures = ("routing", "hardware-config")

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        if graph.graph["ann"].get("partitioned") is not None:
            return graph.copy()  # several partitions: the 'partition' pass lowered each on its own
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
        memory: Literal["sram", "dram"] = "sram"
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
        # Address-out high bits of source neurons: the low bits of their event output's row select.
        x_of = np.array([internal_row_select(chip, e) & hi_max for e in range(E)] + [0])
        x_block = x_of[block]
        sl_internal = np.where(col >= 0, col % cpe + cpe * hem, 0)

        def rs_of_block(e: int) -> int:
            return internal_row_select(chip, e)

        # Drivers per bus (allocated by the row plan).
        driver_of_group: list[list[tuple[int, int]]] = [[] for _ in plan.groups]
        rs_of_group = [0] * len(plan.groups)
        for idx, (rs_list, drv) in plan.allocation.values():
            for k, r, group_drivers in zip(idx, rs_list, drv):
                rs_of_group[k], driver_of_group[k] = r, group_drivers

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
            group_rows = flat_arr[offset[2 * k] : offset[2 * k] + gr.n_rows()]
            labels[gr.hemisphere, group_rows, :] = spare
        weights[slot_h, slot_row, plan.slot_column] = problem.s_weight
        labels[slot_h, slot_row, plan.slot_column] = slot_label

        pmap: ParameterMap = g.graph["ann"]["hw_params"]
        quant: Quantization = g.graph["ann"]["quantization"]
        drivers = []
        names: dict[int, RowMode] = {0: "disabled", 1: "excitatory", 2: "inhibitory"}
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
                        weight_factor=1.0 if hw.weight_factor is None else float(hw.weight_factor[i]),
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
