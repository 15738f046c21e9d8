"""An independent reading of a ``HardwareConfig``: the connectivity the chip would realise, and its rule checks.

:func:`realise` follows every event the way the chip does (spec §1.3): source -> crossbar node filter
-> PADI bus -> synapse driver row-select/mask -> enabled row (sign) -> synapse label match -> the
logical neuron owning the column. It reads nothing but the configuration, so it can check what
``route`` built (and what a hand-edited or corrupted configuration would do).

:func:`check_config` applies every rule of spec §5.2 that a configuration alone can violate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from .config import HardwareConfig, PartitionedConfig
from .errors import Violation

__all__ = ["Realised", "check_annotations", "check_config", "check_partitioned", "realise"]


@dataclass
class Realised:
    """What the chip does with a configuration.

    ``sources[k]`` is ``(population, index)`` of event source ``k``. ``synapse_source[h, r, c]`` is the
    source whose events reach synapse (h, r, c) with a matching label (-1: none; -2: several, a
    collision). ``contacts`` lists every reached synapse of an enabled row as arrays ``(h, r, c, src,
    sign, weight)``; ``deliveries`` counts (source, bus) arrivals and ``idle`` those producing no contact.
    """

    sources: list[tuple[str, int]]
    synapse_source: np.ndarray
    contacts: dict[str, np.ndarray]
    deliveries: int
    idle: int
    violations: list[Violation] = field(default_factory=list)


def _events(config: HardwareConfig) -> tuple[list[tuple[str, int]], np.ndarray, np.ndarray, np.ndarray]:
    chip = config.chip
    sources: list[tuple[str, int]] = []
    index: dict[tuple[str, int], int] = {}
    src, inp, lab = [], [], []
    label_mask = (1 << chip.neuron_label_bits) - 1
    for n in config.neurons:
        if not n.fire:
            continue
        k = index.setdefault((n.population, n.index), len(sources))
        if k == len(sources):
            sources.append((n.population, n.index))
        src.append(k)
        inp.append(n.event_output)
        lab.append(n.label)
    for e in config.external:
        k = index.setdefault((e.population, e.index), len(sources))
        if k == len(sources):
            sources.append((e.population, e.index))
        for spike_label in e.labels:
            src.append(k)
            inp.append(chip.event_outputs + (spike_label >> chip.neuron_label_bits))
            lab.append(spike_label & label_mask)
    return sources, np.array(src, np.int64), np.array(inp, np.int64), np.array(lab, np.int64)


def realise(config: HardwareConfig) -> Realised:
    """Follow every source's events through the configured chip (see the module docstring)."""
    chip = config.chip
    H, R, C = chip.hemispheres, chip.rows_per_hemisphere, chip.columns
    B, J, rpd = chip.buses_per_hemisphere, chip.drivers_per_bus, chip.rows_per_driver
    lbits, nlab = chip.label_bits, chip.labels
    rs_mask = (1 << chip.row_select_bits) - 1
    sources, ev_src, ev_in, ev_lab = _events(config)
    weights, labels = config.synapse_weights(), config.synapse_labels()
    modes = config.row_modes()
    masks = config.row_masks()
    problems: list[Violation] = []

    # Crossbar: which events reach which output.
    delivered: dict[int, list[np.ndarray]] = {}
    for node in config.crossbar:
        sel = (ev_in == node.input) & ((ev_lab & node.mask) == node.target)
        if not sel.any():
            problems.append(
                Violation(
                    f"crossbar node {node.input}->{node.output}",
                    detail="enabled but passes no source; unused nodes must drop all events",
                    check=15,
                )
            )
        delivered.setdefault(node.output, []).append(np.nonzero(sel)[0])

    synapse_source = np.full((H, R, C), -1, np.int64)
    deliveries = idle = 0
    for out in range(min(chip.crossbar_outputs, H * B)):
        if out not in delivered:
            continue
        ev = np.unique(np.concatenate(delivered[out]))
        h, b = divmod(out, B)
        rs = (ev_lab[ev] >> lbits) & rs_mask
        sl = ev_lab[ev] & (nlab - 1)
        srcs = ev_src[ev]
        deliveries += len(ev)
        # Check 13: a (row select, synapse label) pair must identify one source on the bus.
        key = rs * nlab + sl
        order = np.lexsort((srcs, key))
        k_sorted, s_sorted = key[order], srcs[order]
        clash = (k_sorted[1:] == k_sorted[:-1]) & (s_sorted[1:] != s_sorted[:-1])
        for i in np.nonzero(clash)[0][:8]:
            a, bb = sources[s_sorted[i]], sources[s_sorted[i + 1]]
            problems.append(
                Violation(
                    f"address (row select {k_sorted[i] // nlab}, label {k_sorted[i] % nlab}) on PADI bus {b} "
                    f"of hemisphere {h}",
                    detail=f"used by {a[0]}[{a[1]}] and {bb[0]}[{bb[1]}]",
                    check=13,
                )
            )
        j = np.arange(J)
        drivers = j * B + b
        m = masks[h, drivers]  # [J]
        accept = ((j[None, :] ^ rs[:, None]) & m[None, :]) == 0  # [events, J]
        table = np.full((R, nlab), -1, np.int64)
        e_idx, j_idx = np.nonzero(accept)
        rows = (drivers[j_idx][:, None] * rpd + np.arange(rpd)[None, :]).ravel()
        ev_of_row = np.repeat(e_idx, rpd)
        live = modes[h, rows] > 0
        key = rows[live] * nlab + sl[ev_of_row[live]]
        pairs = np.unique(np.stack([key, srcs[ev_of_row[live]]]), axis=1) if live.any() else np.zeros((2, 0), np.int64)
        keys, first, n_src = np.unique(pairs[0], return_index=True, return_counts=True)
        table.reshape(-1)[keys] = np.where(n_src > 1, -2, pairs[1][first])
        # Synapses of enabled rows on this bus look up their label.
        bus_rows = (drivers[:, None] * rpd + np.arange(rpd)[None, :]).ravel()
        bus_rows = bus_rows[modes[h, bus_rows] > 0]
        found = table[bus_rows[:, None], labels[h, bus_rows].astype(np.int64)]  # [rows, C]
        synapse_source[h, bus_rows] = found
        reached = np.isin(srcs, np.unique(found[found >= 0]))
        idle += int((~reached).sum())
        bad = np.argwhere(found == -2)
        for r_i, c in bad[:8]:
            r = bus_rows[r_i]
            problems.append(
                Violation(
                    f"synapse h{h}:row{r}:col{c}",
                    detail=f"label {labels[h, r, c]} is reached by several sources on PADI bus {b}",
                    check=12,
                )
            )

    hh, rr, cc = np.nonzero(synapse_source >= 0)
    src = synapse_source[hh, rr, cc]
    contacts = {
        "h": hh,
        "r": rr,
        "c": cc,
        "src": src,
        "sign": (modes[hh, rr] - 1).astype(np.int64),
        "weight": weights[hh, rr, cc].astype(np.int64),
    }
    return Realised(sources, synapse_source, contacts, deliveries, idle, problems)


def check_config(config: HardwareConfig, realised: Realised | None = None) -> list[Violation]:
    """Every rule of spec §5.2 a configuration can break on its own (empty when it is sound)."""
    chip = config.chip
    out: list[Violation] = []
    H, C, R = chip.hemispheres, chip.columns, chip.rows_per_hemisphere
    lbits = chip.neuron_label_bits

    # 1: circuits inside the chip, logical neurons do not overlap.
    owner = np.full((H, C), -1, np.int64)
    for k, n in enumerate(config.neurons):
        name = f"{n.population}[{n.index}]"
        if n.hemisphere >= H or n.column + n.width > C:
            out.append(
                Violation(f"neuron {name}", detail=f"circuits h{n.hemisphere}:c{n.column}+{n.width} off chip", check=1)
            )
            continue
        taken = owner[n.hemisphere, n.column : n.column + n.width]
        if (taken >= 0).any():
            other = config.neurons[int(taken[taken >= 0][0])]
            out.append(
                Violation(
                    f"circuit h{n.hemisphere}:c{n.column}",
                    detail=f"used by {other.population}[{other.index}] and {name}",
                    check=1,
                )
            )
        owner[n.hemisphere, n.column : n.column + n.width] = k
        # 16: fixed label bits of on-chip neurons.
        if n.event_output != chip.event_output(n.column) or n.address_out >= 1 << chip.address_out_bits:
            out.append(
                Violation(f"neuron {name}", detail="event output / address_out outside the label layout", check=16)
            )
        # 22: calibration ranges.
        for fname, rng in (
            ("v_leak", chip.v_leak_range),
            ("v_reset", chip.v_reset_range),
            ("v_threshold", chip.v_threshold_range),
            ("tau_mem", chip.tau_mem_range),
            ("tau_syn_exc", chip.tau_syn_range),
            ("tau_syn_inh", chip.tau_syn_range),
        ):
            v = getattr(n, fname)
            if not rng[0] * (1 - 1e-9) <= v <= rng[1] * (1 + 1e-9):
                out.append(
                    Violation(f"neuron {name} {fname}={v:.4g}", detail=f"allowed [{rng[0]:g}, {rng[1]:g}]", check=22)
                )
        if n.fire and not (1 <= n.refractory_counter < 1 << chip.refractory_counter_bits):
            out.append(
                Violation(f"neuron {name} refractory_counter={n.refractory_counter}", detail="8-bit, >= 1", check=22)
            )
        if n.holdoff >= 1 << chip.holdoff_bits:
            out.append(Violation(f"neuron {name} holdoff={n.holdoff}", detail="4-bit", check=22))
    used = int(sum(n.width for n in config.neurons))
    if used > chip.circuits:
        out.append(Violation("neuron circuits", used, chip.circuits, check=1))
    for b in config.backends:
        if max(b.fast_clock, b.slow_clock) >= chip.refractory_clock_scales:
            out.append(Violation(f"backend of hemisphere {b.hemisphere}", detail="refractory clock scale", check=22))

    # 4: MADC and CADC.
    if len(config.readout.madc) > chip.madc_neurons:
        out.append(
            Violation(
                "neurons recorded by the MADC", len(config.readout.madc), chip.madc_neurons, check=4, hint="record one"
            )
        )

    # 7 and 11: synapse weights fit the synapse; rows with synapses carry one sign.
    weights = config.synapse_weights()
    for r in config.rows:
        if len(r.weights) != 2 * C or len(r.labels) != 2 * C or r.hemisphere >= H or r.row >= R:
            out.append(Violation(f"synapse row h{r.hemisphere}:row{r.row}", detail="malformed", check=7))
    if int(weights.max(initial=0)) > chip.weight_max:
        h, r, c = np.argwhere(weights > chip.weight_max)[0]
        out.append(Violation(f"synapse h{h}:row{r}:col{c}", int(weights[h, r, c]), chip.weight_max, check=7))
    if int(config.synapse_labels().max(initial=0)) >= chip.labels:
        out.append(Violation("synapse labels", detail=f"must be < {chip.labels}", check=12))
    modes = config.row_modes()
    idle_rows = np.argwhere((modes == 0) & (weights > 0).any(axis=2))
    for h, r in idle_rows[:4]:
        out.append(Violation(f"synapse row h{h}:row{r}", detail="has weights but its row mode is disabled", check=11))
    for d in config.drivers:
        if d.driver >= chip.drivers_per_hemisphere or d.row_mask >= 1 << chip.row_select_bits:
            out.append(
                Violation(f"driver h{d.hemisphere}:{d.driver}", detail="index or row mask out of range", check=13)
            )

    # 14: only nodes the sparse crossbar has.
    for node in config.crossbar:
        if (node.input, node.output) not in chip.crossbar_set:
            out.append(
                Violation(
                    f"crossbar node {node.input}->{node.output}", detail="does not exist on the chip (§1.5)", check=14
                )
            )
        if node.mask >= 1 << lbits or node.target >= 1 << lbits:
            out.append(
                Violation(
                    f"crossbar node {node.input}->{node.output}", detail="mask/target wider than 14 bits", check=16
                )
            )

    # 16 and 18: external labels and FPGA channels.
    channels = set()
    for e in config.external:
        for lab in e.labels:
            if not 0 <= lab < 1 << (lbits + chip.spl1_bits):
                out.append(
                    Violation(f"input {e.population}[{e.index}] label {lab}", detail="not a 16-bit label", check=16)
                )
            channels.add(lab >> lbits)
    if len(channels) > chip.fpga_input_channels or any(ch >= chip.fpga_input_channels for ch in channels):
        out.append(Violation("FPGA input channels", len(channels), chip.fpga_input_channels, check=18))

    # 20: background generators.
    if len(config.background) > chip.background_generators:
        out.append(Violation("background generators", len(config.background), chip.background_generators, check=20))
    for bg in config.background:
        if bg.period >= 1 << chip.background_period_bits or bg.rate >= 1 << chip.background_rate_bits:
            out.append(Violation(f"background generator {bg.index}", detail="period/rate register overflow", check=20))

    # 21: experiment length.
    if config.runtime is not None and not 0 < config.runtime <= chip.max_runtime:
        out.append(Violation("runtime", config.runtime, chip.max_runtime, check=21))

    # 12, 13, 15 from the realised connectivity; 17: recorded neurons reach an FPGA output.
    realised = realise(config) if realised is None else realised
    out.extend(realised.violations)
    fpga_outs = range(H * chip.buses_per_hemisphere, chip.crossbar_outputs)
    for n in config.neurons:
        if not n.recorded:
            continue
        ok = any(
            node.input == n.event_output and node.output in fpga_outs and (n.label & node.mask) == node.target
            for node in config.crossbar
        )
        if not ok or not n.fire:
            out.append(
                Violation(f"recorded neuron {n.population}[{n.index}]", detail="not routed to an FPGA output", check=17)
            )
    return out


def check_annotations(g: nx.MultiDiGraph) -> list[str]:
    """Problems with the bss2 annotations of a pass-level graph (empty when consistent).

    Meant for the pass manager's verification after each pass: every per-synapse annotation has the
    projection's shape and respects its mask, signs and quantized weights agree, and placements fit
    the population sizes and the chip without overlapping.
    """
    from ._annotations import HwParams, PopulationPlacement, Quantized, SignSplit

    out: list[str] = []
    for _u, _v, key, data in g.edges(keys=True, data=True):
        edge, ann = data["ir"], data["ann"]
        shape = edge.weight.shape
        mask = np.ones(shape, bool) if edge.mask is None else np.asarray(edge.mask, bool)
        signs = ann.get("signs")
        if isinstance(signs, SignSplit):
            if signs.exc.shape != shape or signs.inh.shape != shape:
                out.append(f"projection '{key}': signs have shape {signs.exc.shape}, weight {shape}")
            elif ((signs.exc | signs.inh) & ~mask).any():
                out.append(f"projection '{key}': sign slots outside the mask")
        quant = ann.get("quant")
        if isinstance(quant, Quantized):
            if quant.w_hw.shape != shape:
                out.append(f"projection '{key}': w_hw has shape {quant.w_hw.shape}, weight {shape}")
            elif isinstance(signs, SignSplit) and (
                ((quant.w_hw > 0) & ~signs.exc).any() or ((quant.w_hw < 0) & ~signs.inh).any()
            ):
                out.append(f"projection '{key}': a quantized weight has no slot of its sign")
    taken: dict[tuple[int, int], str] = {}
    chip = g.graph["ann"].get("chip")
    for name, data in g.nodes(data=True):
        size = data["ir"].size
        hw = data["ann"].get("hw")
        if isinstance(hw, HwParams) and any(len(getattr(hw, f)) != size for f in ("tau_mem", "v_leak", "refractory")):
            out.append(f"population '{name}': hw parameters do not have one value per neuron")
        pl = data["ann"].get("placement")
        if not isinstance(pl, PopulationPlacement):
            continue
        if len(pl.hemisphere) != size or len(pl.column) != size:
            out.append(f"population '{name}': placement does not have one circuit per neuron")
            continue
        for i, cell in enumerate(pl.circuits()):
            if chip is not None and not (0 <= cell[0] < chip.hemispheres and 0 <= cell[1] < chip.columns):
                out.append(f"population '{name}': circuit h{cell[0]}:c{cell[1]} is off the chip")
            elif cell in taken:
                out.append(f"circuit h{cell[0]}:c{cell[1]} holds both {taken[cell]} and {name}[{i // pl.width}]")
            taken[cell] = f"{name}[{i // pl.width}]"
    parted = g.graph["ann"].get("partitioned")
    if isinstance(parted, PartitionedConfig):
        out.extend(
            check_partitioned(parted, {n: d["ir"].size for n, d in g.nodes(data=True) if d["ir"].kind != "input"})
        )
    return out


def check_partitioned(config: PartitionedConfig, sizes: dict[str, int]) -> list[str]:
    """Problems of a partitioned lowering: every neuron of ``sizes`` (population -> size) in exactly one
    partition, every partition configured, every cut flowing forward from where its slice lives."""
    out: list[str] = []
    n = len(config.parts)
    covered: dict[str, list[tuple[int, int]]] = {}
    where = {}
    for s in config.slices:
        covered.setdefault(s.population, []).append((s.start, s.stop))
        where[s.name] = s.part
        if not 0 <= s.part < n:
            out.append(f"partitioned: slice '{s.name}' is in partition {s.part} of {n}")
    for pop, size in sizes.items():
        spans = sorted(covered.get(pop, []))
        flat = [i for a, b in spans for i in range(a, b)]
        if flat != list(range(size)):
            out.append(f"partitioned: the slices of population '{pop}' do not cover its {size} neurons exactly once")
    for c in config.cuts:
        if where.get(c.name) != c.source_part or not c.source_part < c.target_part < n:
            out.append(f"partitioned: cut '{c.name}' does not flow forward from the partition that records it")
    return out
