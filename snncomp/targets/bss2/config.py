"""``HardwareConfig``: the whole chip configuration in hardware terms, and where every IR item went.

It is what ``route`` produces and what the mock emulator (and, some day, real hardware) executes, so it
is complete on its own: neuron calibration targets, synapse weights and labels, synapse-driver row
masks and row modes, crossbar nodes, the labels each external (FPGA) source is sent with, which
neurons are recorded, and the model <-> hardware maps to convert inputs and outputs. Everything not
listed is in its reset state: neurons off, synapses weight 0, drivers with an exact-match row mask
(``0b11111``) and both rows disabled, crossbar nodes dropping every event, background generators off.

Label layout (spec §1.3). A 16-bit spike label is ``channel << 14 | NeuronLabel``. On-chip neurons emit
``event_output << 8 | address_out``. A PADI bus sees bits 10..0: the row-select address
``(label >> 6) & 31`` and the synapse label ``label & 63``. A synapse driver with bus index ``j`` accepts
an event iff ``(j & row_mask) == (row_select & row_mask)``; then every synapse of its enabled rows whose
label equals the event's synapse label adds ``weight`` to the excitatory or inhibitory input (row mode)
of the logical neuron owning its column.

JSON: ``config.model_dump_json()`` / ``HardwareConfig.model_validate_json(text)`` round-trip exactly;
synapse rows store weights and labels as hex strings (two digits per column).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .chip import ChipSpec

__all__ = [
    "CONFIG_VERSION",
    "Backend",
    "BackgroundSource",
    "CrossbarNode",
    "CutSource",
    "DriverConfig",
    "ExternalSource",
    "HardwareConfig",
    "NeuronConfig",
    "PartitionedConfig",
    "PopulationMap",
    "PopulationSlice",
    "ProjectionMap",
    "ProjectionPiece",
    "Readout",
    "SynapseRow",
]

CONFIG_VERSION: Final = 1
RowMode = Literal["disabled", "excitatory", "inhibitory"]
ROW_MODE_CODE = {"disabled": 0, "excitatory": 1, "inhibitory": 2}


class _Cfg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NeuronConfig(_Cfg):
    """One logical neuron: ``width`` adjacent circuits of a hemisphere, shorted; spikes leave from ``column``.

    Potentials in CADC LSB, times in hardware seconds. The refractory period is ``refractory_counter``
    ticks of the hemisphere's ``fast`` or ``slow`` clock (``refractory_time`` is that product).
    ``max_spikes`` is the model's per-run spike budget: 1 is realised by a refractory period covering
    the run; larger budgets have no chip counterpart and are applied to the recorded spikes.
    ``weight_factor`` is no chip setting: the compiler multiplied the model weights of projections into
    this neuron by it (on top of ``weight_scale``) before quantizing them -- the compensation of the short
    synaptic time constant that stands in for instantaneous synapses (``HwParams.weight_factor``).
    """

    population: str
    index: int = Field(ge=0)
    hemisphere: int = Field(ge=0)
    column: int = Field(ge=0)
    width: int = Field(default=1, ge=1)
    event_output: int = Field(ge=0)
    address_out: int = Field(ge=0)
    fire: bool
    recorded: bool
    v_leak: float
    v_reset: float
    v_threshold: float
    tau_mem: float
    tau_syn_exc: float
    tau_syn_inh: float
    refractory_clock: Literal["fast", "slow"] = "fast"
    refractory_counter: int = Field(default=0, ge=0)
    refractory_time: float = 0.0
    holdoff: int = Field(default=0, ge=0)
    max_spikes: int | None = None
    weight_factor: float = Field(default=1.0, gt=0)

    @property
    def label(self) -> int:
        """The 14-bit NeuronLabel of this neuron's spikes."""
        return (self.event_output << 8) | self.address_out


class DriverConfig(_Cfg):
    """A synapse driver (``driver`` 0..127 of ``hemisphere``): row-address compare mask and its two row modes."""

    hemisphere: int = Field(ge=0)
    driver: int = Field(ge=0)
    row_mask: int = Field(ge=0)
    row_modes: tuple[RowMode, RowMode]


class SynapseRow(_Cfg):
    """The 256 synapses of one row: 6-bit weight and 6-bit label per column, as hex (2 digits per column)."""

    hemisphere: int = Field(ge=0)
    row: int = Field(ge=0)
    weights: str
    labels: str


class CrossbarNode(_Cfg):
    """An enabled crossbar node: forwards an event from ``input`` to ``output`` iff ``(label & mask) == target``."""

    input: int = Field(ge=0)
    output: int = Field(ge=0)
    mask: int = Field(ge=0)
    target: int = Field(ge=0)


class ExternalSource(_Cfg):
    """An input channel: the FPGA sends each of its spikes once per label (16-bit, channel in bits 15..14)."""

    population: str
    index: int = Field(ge=0)
    labels: tuple[int, ...]


class BackgroundSource(_Cfg):
    """An on-chip background spike generator (unused by snncomp networks; kept off)."""

    index: int = Field(ge=0)
    enable: bool = False
    period: int = Field(default=0, ge=0)
    rate: int = Field(default=0, ge=0)
    seed: int = Field(default=0, ge=0)
    label: int = Field(default=0, ge=0)


class Backend(_Cfg):
    """Neuron backend of one hemisphere: the two refractory clocks, ``chip_clock / 2**(scale+1)`` each."""

    hemisphere: int = Field(ge=0)
    fast_clock: int = Field(ge=0)
    slow_clock: int = Field(ge=0)


class Readout(_Cfg):
    """Analog readout: populations whose membrane the CADC samples, its memory, and MADC neurons."""

    cadc: tuple[str, ...] = ()
    cadc_memory: Literal["sram", "dram"] = "sram"
    madc: tuple[tuple[str, int], ...] = ()


class PopulationMap(_Cfg):
    """Where a population went: ``neurons[i]`` indexes ``HardwareConfig.neurons`` (``external`` for inputs)."""

    kind: Literal["input", "lif", "li", "if"]
    size: int = Field(ge=1)
    neurons: tuple[int, ...]


class ProjectionMap(_Cfg):
    """Where a projection went: one entry per physical synapse (column arrays of equal length).

    Synapse ``k`` realises weight ``[pre[k], post[k]]`` with sign ``sign[k]`` (0 excitatory,
    1 inhibitory) at ``(hemisphere[k], row[k], column[k])`` with 6-bit ``weight[k]``; a weight split over
    several synapses (``quantize{saturate=split}``) has several entries.
    """

    source: str
    target: str
    pre: list[int]
    post: list[int]
    sign: list[int]
    hemisphere: list[int]
    row: list[int]
    column: list[int]
    weight: list[int]

    @property
    def synapses(self) -> int:
        """Number of physical synapses."""
        return len(self.pre)


class HardwareConfig(_Cfg):
    """The complete configuration of one BrainScaleS-2 chip for one network (versioned, JSON-serializable).

    ``effective weight = sign * weight / weight_scale`` (model units of synaptic current; into a neuron
    with ``weight_factor != 1`` that stands for the model's voltage jump ``effective / weight_factor``);
    model time = hardware time *
    ``speedup``; ``V_model = (V_lsb - v_offset) / v_scale``.
    """

    config_version: Literal[1] = CONFIG_VERSION
    network: str
    chip: ChipSpec = Field(default_factory=ChipSpec)
    speedup: float
    v_offset: float
    v_scale: float
    weight_scale: float
    weight_bits: int
    runtime: float | None = None
    membrane_capacitance: float
    i_synin_gm: float
    synapse_dac_bias: float
    backends: tuple[Backend, ...]
    neurons: tuple[NeuronConfig, ...]
    drivers: tuple[DriverConfig, ...]
    rows: tuple[SynapseRow, ...]
    crossbar: tuple[CrossbarNode, ...]
    external: tuple[ExternalSource, ...]
    background: tuple[BackgroundSource, ...]
    readout: Readout = Field(default_factory=Readout)
    populations: dict[str, PopulationMap]
    projections: dict[str, ProjectionMap]

    # -- dense views ---------------------------------------------------------------------------------------------
    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(weights, labels)``, each ``uint8[hemisphere, row, column]`` (decoded on every call; not cached,
        so that ``model_copy(update=...)`` can never see stale arrays)."""
        chip = self.chip
        shape = (chip.hemispheres, chip.rows_per_hemisphere, chip.columns)
        w = np.zeros(shape, np.uint8)
        lab = np.zeros(shape, np.uint8)
        for r in self.rows:
            w[r.hemisphere, r.row] = np.frombuffer(bytes.fromhex(r.weights), np.uint8)
            lab[r.hemisphere, r.row] = np.frombuffer(bytes.fromhex(r.labels), np.uint8)
        w.flags.writeable = lab.flags.writeable = False
        return w, lab

    def synapse_weights(self) -> np.ndarray:
        """``uint8[hemisphere, row, column]`` synapse weights (read-only)."""
        return self.matrices()[0]

    def synapse_labels(self) -> np.ndarray:
        """``uint8[hemisphere, row, column]`` synapse labels (read-only)."""
        return self.matrices()[1]

    def row_modes(self) -> np.ndarray:
        """``int8[hemisphere, row]``: 0 disabled, 1 excitatory, 2 inhibitory."""
        chip = self.chip
        out = np.zeros((chip.hemispheres, chip.rows_per_hemisphere), np.int8)
        for d in self.drivers:
            for k, mode in enumerate(d.row_modes):
                out[d.hemisphere, d.driver * chip.rows_per_driver + k] = ROW_MODE_CODE[mode]
        return out

    def row_masks(self) -> np.ndarray:
        """``int[hemisphere, driver]`` row-address compare masks (reset value: all ones)."""
        chip = self.chip
        out = np.full((chip.hemispheres, chip.drivers_per_hemisphere), (1 << chip.row_select_bits) - 1, np.int64)
        for d in self.drivers:
            out[d.hemisphere, d.driver] = d.row_mask
        return out

    def circuit_owner(self) -> np.ndarray:
        """``int[hemisphere, column]``: index into ``neurons`` of the logical neuron owning the circuit, or -1."""
        chip = self.chip
        out = np.full((chip.hemispheres, chip.columns), -1, np.int64)
        for k, n in enumerate(self.neurons):
            out[n.hemisphere, n.column : n.column + n.width] = k
        return out

    # -- I/O -----------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the configuration as JSON."""
        Path(path).write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> HardwareConfig:
        """Read a configuration written by :meth:`save`."""
        return cls.model_validate_json(Path(path).read_text())

    def text(self) -> str:
        """A one-paragraph summary (what the graph printer shows)."""
        chip = self.chip
        per_h = [sum(n.width for n in self.neurons if n.hemisphere == h) for h in range(chip.hemispheres)]
        modes = self.row_modes()
        rows = [int((modes[h] > 0).sum()) for h in range(chip.hemispheres)]
        syn = sum(p.synapses for p in self.projections.values())
        channels = sorted({lab >> 14 for e in self.external for lab in e.labels})
        return (
            f"HardwareConfig v{self.config_version} for @{self.network}: "
            f"circuits {'+'.join(map(str, per_h))}/{chip.circuits}, "
            f"rows {'+'.join(map(str, rows))}/{chip.hemispheres * chip.rows_per_hemisphere}, "
            f"synapses {syn}, drivers {len(self.drivers)}, crossbar nodes {len(self.crossbar)}, "
            f"external labels {sum(len(e.labels) for e in self.external)} on channels {channels}, "
            f"recorded {sum(n.recorded for n in self.neurons)}"
        )

    def __str__(self) -> str:
        return self.text()


# -- several chips, or one chip several times (docs/bss2.md, "Partitioned and multi-chip execution") -------------


class PopulationSlice(_Cfg):
    """Neurons ``start .. stop - 1`` of ``population``, placed in partition ``part`` as population ``name``."""

    population: str
    start: int = Field(ge=0)
    stop: int = Field(ge=1)
    part: int = Field(ge=0)
    name: str


class ProjectionPiece(_Cfg):
    """The block ``weight[rows[0]:rows[1], cols[0]:cols[1]]`` of ``projection``, realised in partition ``part``
    as the projection ``key`` from ``source`` (a stand-in input where ``cut``) to ``target``."""

    projection: str
    part: int = Field(ge=0)
    key: str
    source: str
    target: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    synapses: int = Field(ge=0)
    cut: bool


class CutSource(_Cfg):
    """A cut: the spikes of slice ``name`` (neurons ``start .. stop - 1`` of ``population``), recorded in
    partition ``source_part``, are the input population ``name`` of partition ``target_part``."""

    name: str
    population: str
    start: int = Field(ge=0)
    stop: int = Field(ge=1)
    source_part: int = Field(ge=0)
    target_part: int = Field(ge=0)
    projections: tuple[str, ...]
    synapses: int = Field(ge=0)


class PartitionedConfig(_Cfg):
    """A network run in several partitions: one ``HardwareConfig`` per partition and the cut table.

    ``mode="sequential"``: one chip runs the partitions one after another, each partition's recorded
    spikes replayed as input spikes of the later ones; ``"multi-chip"``: partition ``i`` on chip ``i``,
    cut spikes delivered ``inter_chip_latency`` model seconds later. ``slices`` says where every neuron
    went, ``pieces`` where every block of every projection went, ``cuts`` which spikes cross partitions.
    """

    config_version: Literal[1] = CONFIG_VERSION
    network: str
    mode: Literal["sequential", "multi-chip"]
    chips: int = Field(ge=1)
    inter_chip_latency: float = Field(ge=0)
    slices: tuple[PopulationSlice, ...]
    pieces: tuple[ProjectionPiece, ...]
    cuts: tuple[CutSource, ...]
    parts: tuple[HardwareConfig, ...]

    def save(self, path: str | Path) -> None:
        """Write the configurations and the cut table as JSON."""
        Path(path).write_text(self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> PartitionedConfig:
        """Read what :meth:`save` wrote."""
        return cls.model_validate_json(Path(path).read_text())

    def text(self) -> str:
        """One line: partitions, their circuits, the cuts (what the graph printer shows)."""
        used = "+".join(str(sum(n.width for n in p.neurons)) for p in self.parts)
        where = "one chip, one after another" if self.mode == "sequential" else f"{self.chips} chips"
        return (
            f"PartitionedConfig v{self.config_version} for @{self.network}: {len(self.parts)} partitions on {where}, "
            f"circuits {used}, {len(self.cuts)} cut source(s) carrying "
            f"{sum(c.synapses for c in self.cuts)} synapses"
        )

    def __str__(self) -> str:
        return self.text()
