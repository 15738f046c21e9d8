"""The resource report (used / available per resource, hemisphere and PADI bus) and a placement picture.

``format_report(result)`` is what ``snncomp compile --target bss2`` prints; ``placement_dot(result)``
draws the chip as Graphviz: one box per event-output block and hemisphere with the neurons placed
there, one node per PADI bus with its rows in use, and an arrow from each block to every bus its
neurons' spikes are routed to. A network lowered in several partitions (a ``PartitionedConfig``) gets
one report per partition and the cut table, and one cluster per partition in the picture, with an
arrow per cut.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ._annotations import ranges
from .check import _events
from .config import HardwareConfig, PartitionedConfig

__all__ = [
    "BusUsage",
    "ResourceReport",
    "config_of",
    "format_report",
    "partition_report",
    "placement_dot",
    "placement_dot_lines",
    "resource_report",
]


class BusUsage(BaseModel):
    """One PADI bus: synapse rows and drivers in use, and the sources whose events it carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hemisphere: int
    bus: int
    rows: int
    drivers: int
    sources: int
    rows_available: int
    drivers_available: int


class ResourceReport(BaseModel):
    """Used / available for every chip resource (graph annotation ``resources`` of ``route``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    network: str
    circuits: tuple[int, ...]
    circuits_available: int
    rows: tuple[int, ...]
    rows_available: int
    synapses: tuple[int, ...]
    synapses_nonzero: tuple[int, ...]
    synapses_available: int
    buses: tuple[BusUsage, ...]
    event_outputs: int
    event_outputs_available: int
    crossbar_nodes: int
    crossbar_nodes_available: int
    fpga_input_channels: int
    fpga_input_channels_available: int
    external_labels: int
    fpga_output_channels: int
    fpga_output_channels_available: int
    recorded: int
    background_generators: int
    background_generators_available: int
    madc: int
    madc_available: int
    cadc_populations: tuple[str, ...]

    def summary(self) -> str:
        """One line: circuits, rows per hemisphere, the fullest bus."""
        top = max(self.buses, key=lambda b: (b.rows / b.rows_available, -b.hemisphere, -b.bus), default=None)
        rows = " ".join(f"h{h} {r}/{self.rows_available}" for h, r in enumerate(self.rows))
        fullest = f"; fullest PADI bus h{top.hemisphere}b{top.bus} {top.rows}/{top.rows_available} rows" if top else ""
        return f"circuits {sum(self.circuits)}/{self.circuits_available}; rows {rows}{fullest}"

    def text(self) -> str:
        """The one-line summary (what the graph printer shows)."""
        return self.summary()

    def table(self) -> str:
        """The report as an aligned table."""
        lines = [f"BrainScaleS-2 resources for @{self.network}", f"{'resource':<38}{'used':>8}{'available':>11}"]

        def row(name: str, used: int, avail: int, note: str = "") -> None:
            lines.append(f"{name:<38}{used:>8}{avail:>11}" + (f"  {note}" if note else ""))

        per_h = self.circuits_available // max(1, len(self.circuits))
        row("neuron circuits", sum(self.circuits), self.circuits_available)
        for h, n in enumerate(self.circuits):
            row(f"  hemisphere {h}", n, per_h)
        for h, r in enumerate(self.rows):
            row(f"synapse rows, hemisphere {h}", r, self.rows_available)
        for h, (s, nz) in enumerate(zip(self.synapses, self.synapses_nonzero)):
            row(f"synapses, hemisphere {h}", s, self.synapses_available, f"{nz} non-zero")
        for b in self.buses:
            row(
                f"  PADI bus {b.bus} of hemisphere {b.hemisphere}: rows",
                b.rows,
                b.rows_available,
                f"{b.sources} sources",
            )
            row(f"  PADI bus {b.bus} of hemisphere {b.hemisphere}: drivers", b.drivers, b.drivers_available)
        row("neuron event outputs (sources)", self.event_outputs, self.event_outputs_available)
        row("crossbar nodes", self.crossbar_nodes, self.crossbar_nodes_available)
        row(
            "FPGA input channels",
            self.fpga_input_channels,
            self.fpga_input_channels_available,
            f"{self.external_labels} labels",
        )
        row(
            "FPGA output channels (recording)",
            self.fpga_output_channels,
            self.fpga_output_channels_available,
            f"{self.recorded} neurons",
        )
        row("background generators", self.background_generators, self.background_generators_available)
        row("MADC neurons", self.madc, self.madc_available)
        if self.cadc_populations:
            lines.append(f"CADC readout: {', '.join(self.cadc_populations)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def resource_report(config: HardwareConfig) -> ResourceReport:
    """Count what ``config`` uses, from the configuration alone."""
    chip = config.chip
    H, B, rpd = chip.hemispheres, chip.buses_per_hemisphere, chip.rows_per_driver
    modes = config.row_modes()
    weights = config.synapse_weights()
    circuits = [0] * H
    for n in config.neurons:
        circuits[n.hemisphere] += n.width
    allocated = np.zeros(H, np.int64)
    for p in config.projections.values():
        if p.hemisphere:
            allocated += np.bincount(np.array(p.hemisphere), minlength=H)[:H]
    _, ev_src, ev_in, ev_lab = _events(config)
    buses = []
    for h in range(H):
        for b in range(B):
            drivers = np.arange(b, chip.drivers_per_hemisphere, B)
            rows = (drivers[:, None] * rpd + np.arange(rpd)).ravel()
            live = modes[h, rows] > 0
            out = chip.padi_output(h, b)
            srcs: set[int] = set()
            for node in config.crossbar:
                if node.output == out:
                    sel = (ev_in == node.input) & ((ev_lab & node.mask) == node.target)
                    srcs |= set(ev_src[sel].tolist())
            buses.append(
                BusUsage(
                    hemisphere=h,
                    bus=b,
                    rows=int(live.sum()),
                    drivers=int(live.reshape(-1, rpd).any(axis=1).sum()),
                    sources=len(srcs),
                    rows_available=chip.rows_per_bus,
                    drivers_available=chip.drivers_per_bus,
                )
            )
    padi = {chip.padi_output(h, b) for h in range(H) for b in range(B)}
    channels = {lab >> chip.neuron_label_bits for e in config.external for lab in e.labels}
    return ResourceReport(
        network=config.network,
        circuits=tuple(circuits),
        circuits_available=chip.circuits,
        rows=tuple(int((modes[h] > 0).sum()) for h in range(H)),
        rows_available=chip.rows_per_hemisphere,
        synapses=tuple(int(x) for x in allocated),
        synapses_nonzero=tuple(int((weights[h] > 0).sum()) for h in range(H)),
        synapses_available=chip.rows_per_hemisphere * chip.columns,
        buses=tuple(buses),
        event_outputs=len({n.input for n in config.crossbar if n.input < chip.event_outputs and n.output in padi}),
        event_outputs_available=chip.event_outputs,
        crossbar_nodes=len(config.crossbar),
        crossbar_nodes_available=len(chip.crossbar),
        fpga_input_channels=len(channels),
        fpga_input_channels_available=chip.fpga_input_channels,
        external_labels=sum(len(e.labels) for e in config.external),
        fpga_output_channels=len({n.output for n in config.crossbar if n.output not in padi}),
        fpga_output_channels_available=chip.fpga_output_channels,
        recorded=sum(n.recorded for n in config.neurons),
        background_generators=sum(bg.enable for bg in config.background),
        background_generators_available=chip.background_generators,
        madc=len(config.readout.madc),
        madc_available=chip.madc_neurons,
        cadc_populations=config.readout.cadc,
    )


def config_of(source: Any) -> HardwareConfig | PartitionedConfig:
    """The configuration of a compile result, a graph, an ``Executable`` (``.lowered``) or itself: a
    ``HardwareConfig``, or a ``PartitionedConfig`` where the network was lowered in several partitions."""
    import networkx as nx

    from ...errors import TargetError

    if isinstance(source, HardwareConfig | PartitionedConfig):
        return source
    lowered = getattr(source, "lowered", None)
    if lowered is not None:
        return config_of(lowered)
    g = getattr(source, "graph", None)
    if isinstance(g, nx.Graph):
        return config_of(g)
    if isinstance(g, dict):
        ann = g.get("ann", {})
        cfg = ann.get("partitioned") or ann.get("hardware_config")
        if isinstance(cfg, HardwareConfig | PartitionedConfig):
            return cfg
    raise TargetError(f"no BrainScaleS-2 hardware configuration in {type(source).__name__}; run the bss2 pipeline")


def format_report(source: Any) -> str:
    """The resource report of a bss2 compile result (``CompileResult``, graph or configuration) as text."""
    config = config_of(source)
    if isinstance(config, PartitionedConfig):
        return partition_report(config)
    return resource_report(config).table()


def partition_report(config: PartitionedConfig, cut_spikes: dict[tuple[str, int], int] | None = None) -> str:
    """The partitions (their populations and resource tables) and the cut projections, with the spikes that
    crossed each cut where ``cut_spikes`` (``PartitionedExecutable.cut_spikes``) gives them."""
    mode = (
        "one chip, one after another"
        if config.mode == "sequential"
        else (f"{config.chips} chips, inter-chip latency {config.inter_chip_latency:g} s (model)")
    )
    lines = [f"BrainScaleS-2 partitions for @{config.network}: {len(config.parts)} on {mode}"]
    for i, part in enumerate(config.parts):
        pops = ", ".join(
            s.population if s.name == s.population else f"{s.population}[{s.start}-{s.stop - 1}] as {s.name}"
            for s in config.slices
            if s.part == i
        )
        lines.append(f"-- partition {i}: {pops}")
        lines.extend(f"   {line}" for line in resource_report(part).table().splitlines())
    lines.append("cut projections (source slice: recorded in -> replayed in):")
    for c in config.cuts:
        spikes = "" if cut_spikes is None else f", {cut_spikes.get((c.name, c.target_part), 0)} spikes in the last run"
        lines.append(
            f"   {c.name} = {c.population}[{c.start}-{c.stop - 1}]: partition {c.source_part} -> {c.target_part}; "
            f"{c.synapses} synapses of {', '.join(c.projections)}{spikes}"
        )
    if not config.cuts:
        lines.append("   (none)")
    return "\n".join(lines)


def placement_dot(source: Any) -> str:
    """Graphviz text of the chip: blocks (hemisphere x event output) with their neurons, PADI buses, routes."""
    config = config_of(source)
    lines = [
        f'digraph "bss2_{config.network}" {{',
        "  rankdir=TB;",
        '  node [shape=box, fontname="monospace", fontsize=10];',
        *placement_dot_lines(config),
        "}",
    ]
    return "\n".join(lines) + "\n"


def _cell_text(pop: str, idx: list[int]) -> str:
    listed = ranges(idx)
    return f"{pop} x{len(idx)}: [{listed if len(listed) <= 32 else listed[:29] + '...'}]"


def placement_dot_lines(source: Any, prefix: str = "chip_") -> list[str]:
    """The chip picture as Graphviz statements (clusters and edges) to splice into another digraph.

    Node ids start with ``prefix`` so they cannot collide with population nodes of the graph dump. A
    partitioned network is drawn as one cluster per partition (its chip inside), with an arrow per cut.
    """
    config = config_of(source)
    if isinstance(config, PartitionedConfig):
        return _partition_dot_lines(config, prefix)
    chip = config.chip
    H, B, cpe = chip.hemispheres, chip.buses_per_hemisphere, chip.columns_per_event_output
    report = resource_report(config)
    lines: list[str] = []
    cells: dict[tuple[int, int], dict[str, list[int]]] = {}
    for n in config.neurons:
        cells.setdefault((n.hemisphere, n.event_output), {}).setdefault(n.population, []).append(n.index)
    for h in range(H):
        lines.append(f'  subgraph "cluster_{prefix}h{h}" {{')
        lines.append(
            f'    label="hemisphere {h}: {report.circuits[h]}/{chip.columns} circuits, '
            f'{report.rows[h]}/{chip.rows_per_hemisphere} rows";'
        )
        for e in range(chip.event_outputs):
            pops = cells.get((h, e), {})
            used = sum(len(v) for v in pops.values())
            text = "\\n".join(_cell_text(p, idx) for p, idx in sorted(pops.items())) or "(free)"
            fill = "#ffffff" if not used else ("#c6dbef" if used < cpe else "#6baed6")
            head = f"event output {e} (c{e * cpe}-{(e + 1) * cpe - 1})"
            lines.append(
                f'    "{prefix}h{h}e{e}" [shape=box, label="{head}\\n{text}", style=filled, fillcolor="{fill}"];'
            )
        for b in range(B):
            u = next(x for x in report.buses if x.hemisphere == h and x.bus == b)
            ratio = u.rows / u.rows_available
            color = "#fee0d2" if ratio < 0.75 else ("#fc9272" if ratio < 1 else "#de2d26")
            lines.append(
                f'    "{prefix}h{h}b{b}" [shape=ellipse, label="PADI bus {b}\\n{u.rows}/{u.rows_available} rows", '
                f'style=filled, fillcolor="{color}"];'
            )
        lines.append("  }")
    n_fpga = chip.fpga_input_channels
    for node in config.crossbar:
        if node.output >= H * B:
            continue
        h, b = divmod(node.output, B)
        if node.input < chip.event_outputs:
            for sh in sorted({n.hemisphere for n in config.neurons if n.event_output == node.input}):
                lines.append(f'  "{prefix}h{sh}e{node.input}" -> "{prefix}h{h}b{b}";')
        else:
            lines.append(f'  "{prefix}fpga{node.input - chip.event_outputs}" -> "{prefix}h{h}b{b}";')
    for s in sorted(
        {n.input - chip.event_outputs for n in config.crossbar if 0 <= n.input - chip.event_outputs < n_fpga}
    ):
        lines.append(f'  "{prefix}fpga{s}" [shape=cds, label="FPGA channel {s}"];')
    return lines


def _partition_dot_lines(config: PartitionedConfig, prefix: str) -> list[str]:
    lines: list[str] = []
    for i, part in enumerate(config.parts):
        pops = ", ".join(s.name for s in config.slices if s.part == i)
        lines.append(f'  subgraph "cluster_{prefix}part{i}" {{')
        lines.append(f'    label="partition {i}: {pops}";')
        lines.append(f'    "{prefix}part{i}" [shape=note, label="partition {i}"];')
        lines.extend(f"  {line}" for line in placement_dot_lines(part, f"{prefix}p{i}_"))
        lines.append("  }")
    for c in config.cuts:
        lines.append(
            f'  "{prefix}part{c.source_part}" -> "{prefix}part{c.target_part}" '
            f'[label="{c.name} ({c.synapses} synapses)", style=dashed];'
        )
    return lines
