"""``ChipSpec``: every count, limit and range of a BrainScaleS-2 (HICANN-X v3) chip.

Defaults are the real chip's numbers from ``BSS2_SPEC.md`` §1–2; fields whose
value the spec marks unconfirmed ([U]) say so in their description and in
``docs/bss2.md``. Every pass of the bss2 pipeline reads its limits from one
``ChipSpec`` (compile option ``chip``), so a test or a what-if study can change a
number in one place.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ChipSpec", "Range", "default_crossbar"]

PositiveInt = Annotated[int, Field(ge=1)]
Range = tuple[float, float]
"""An inclusive ``(low, high)`` interval."""

# Crossbar input/output numbering (spec §1.5).
NEURON_INPUTS = range(0, 8)
FPGA_INPUTS = range(8, 12)
BACKGROUND_INPUTS = range(12, 20)
PADI_OUTPUTS = range(0, 8)
FPGA_OUTPUTS = range(8, 12)


def default_crossbar() -> tuple[tuple[int, int], ...]:
    """The (input, output) pairs the real crossbar has a node for (spec §1.5), sorted."""
    nodes: set[tuple[int, int]] = set()
    for e in NEURON_INPUTS:  # neuron event output e: PADI bus e%4 of both hemispheres, FPGA output 8 + e%4
        nodes |= {(e, e % 4), (e, e % 4 + 4), (e, 8 + e % 4)}
    for s in range(4):  # FPGA input s (crossbar input 8+s): every PADI bus, and loop-back to FPGA output 8+s
        nodes |= {(8 + s, o) for o in PADI_OUTPUTS} | {(8 + s, 8 + s)}
    for k in range(8):  # background generator k (input 12+k): PADI bus k, FPGA output 8 + k%4
        nodes |= {(12 + k, k), (12 + k, 8 + k % 4)}
    return tuple(sorted(nodes))


class ChipSpec(BaseModel):
    """The resources and analog ranges of one BrainScaleS-2 chip (immutable).

    Geometry: ``hemispheres`` neuron rows × ``columns`` neuron circuits; each
    hemisphere has a synapse array of ``rows_per_hemisphere`` × ``columns``
    synapses fed by ``drivers_per_hemisphere`` synapse drivers (``rows_per_driver``
    rows each), which listen to ``buses_per_hemisphere`` PADI buses (driver ``d``
    on bus ``d % buses``, index ``d // buses`` on it). Neuron column ``c`` sends its
    spikes to event output ``c // columns_per_event_output``.

    Units: times in hardware seconds, potentials in CADC LSB, currents and
    biases in CapMem LSB.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="HICANN-X v3", description="chip revision")

    # -- neurons (§1.1) -------------------------------------------------------------------------------------------
    hemispheres: PositiveInt = Field(default=2, description="neuron rows = synapse arrays [C]")
    columns: PositiveInt = Field(default=256, description="neuron circuits per hemisphere = synapse columns [C]")
    quadrants: PositiveInt = Field(default=4, description="CapMem blocks of 128 circuits; not a routing unit [C]")
    event_outputs: PositiveInt = Field(default=8, description="neuron event outputs (neuron->crossbar ports) [C]")
    columns_per_event_output: PositiveInt = Field(default=32, description="neuron columns per event output [C]")
    address_out_bits: PositiveInt = Field(default=8, description="configurable low bits of a neuron's label [C]")

    # -- synapses and drivers (§1.2–1.4) ------------------------------------------------------------------------
    rows_per_hemisphere: PositiveInt = Field(default=256, description="synapse rows per synapse array [C]")
    drivers_per_hemisphere: PositiveInt = Field(default=128, description="synapse drivers per hemisphere [C]")
    rows_per_driver: PositiveInt = Field(default=2, description="synapse rows driven by one driver [C]")
    buses_per_hemisphere: PositiveInt = Field(default=4, description="PADI buses per hemisphere [C]")
    weight_bits: PositiveInt = Field(default=6, description="unsigned synapse weight, 0..63 [C]")
    label_bits: PositiveInt = Field(default=6, description="synapse label (source address) [C]")
    row_select_bits: PositiveInt = Field(default=5, description="row-select address on a PADI bus [C]")
    neuron_label_bits: PositiveInt = Field(default=14, description="NeuronLabel seen by the crossbar [C]")
    spl1_bits: PositiveInt = Field(default=2, description="FPGA channel bits above the NeuronLabel [C]")
    max_event_rate_per_driver: float = Field(default=125e6, gt=0, description="events/s per driver (8 ns) [D]")
    synapse_time_calib_bits: PositiveInt = Field(default=2, description="per-synapse TimeCalib [C]")
    synapse_amp_calib_bits: PositiveInt = Field(default=2, description="per-synapse AmpCalib [C]")
    stp_bits: PositiveInt = Field(default=4, description="driver STP utilization/recovery/offset, each [C]; unused")

    # -- routing (§1.5–1.7) -------------------------------------------------------------------------------------
    crossbar_inputs: PositiveInt = Field(default=20, description="0-7 neuron outputs, 8-11 FPGA, 12-19 background [C]")
    crossbar_outputs: PositiveInt = Field(default=12, description="0-7 PADI buses, 8-11 to the FPGA [C]")
    crossbar: tuple[tuple[int, int], ...] = Field(
        default_factory=default_crossbar, description="(input, output) pairs that have a crossbar node (§1.5) [C]"
    )
    fpga_input_channels: PositiveInt = Field(default=4, description="FPGA->chip event channels [C]")
    fpga_output_channels: PositiveInt = Field(default=4, description="chip->FPGA event channels [C]")
    labels_per_spike_packet: PositiveInt = Field(default=3, description="labels one FPGA spike packet carries [C]")
    fpga_event_rate: float = Field(
        default=100e6, gt=0, description="aggregate FPGA->chip events/s [U]: unconfirmed, order of magnitude only"
    )
    background_generators: PositiveInt = Field(default=8, description="on-chip background spike sources [C]")
    background_period_bits: PositiveInt = Field(default=16, description="background period in clock cycles [C]")
    background_rate_bits: PositiveInt = Field(default=8, description="background Poisson rate register [C]")
    background_mask_bits: PositiveInt = Field(default=8, description="label bits a generator can randomise [C]")
    background_seed_bits: PositiveInt = Field(default=32, description="generator seed [C]")
    background_rate: float = Field(default=125e6, gt=0, description="events/s per background generator [D]")

    # -- clocks and timing (§1.7, §2.4) -------------------------------------------------------------------------
    fpga_clock: float = Field(default=125e6, gt=0, description="Hz; 8 ns spike-time resolution [C]")
    chip_clock: float = Field(default=250e6, gt=0, description="Hz; neuron backend clock [C]")
    timer_bits: PositiveInt = Field(default=32, description="experiment runtime in FPGA cycles [C]")

    # -- readout (§1.1, §2.4) ----------------------------------------------------------------------------------
    madc_neurons: PositiveInt = Field(default=1, description="neurons the MADC records per experiment [C]")
    madc_bits: PositiveInt = Field(default=10, description="MADC resolution [C]")
    madc_sample_rate: float = Field(default=30e6, gt=0, description="MADC samples/s, about [D]")
    cadcs: PositiveInt = Field(default=2, description="column-parallel ADCs, one per hemisphere [D]")
    cadc_channels: PositiveInt = Field(default=512, description="channels per CADC [D]")
    cadc_bits: PositiveInt = Field(default=8, description="CADC resolution [D]")
    cadc_interval_sram: float = Field(default=2e-6, gt=0, description="s between CADC samples stored in SRAM [C]")
    cadc_interval_dram: float = Field(default=6e-6, gt=0, description="s between CADC samples stored in DRAM [C]")
    capmem_bits: PositiveInt = Field(default=10, description="analog parameter cells [D]")
    capmem_currents_per_neuron: PositiveInt = Field(default=16, description="current cells per circuit [D]")
    capmem_voltages_per_neuron: PositiveInt = Field(default=8, description="voltage cells per circuit [D]")
    neuron_config_bits: PositiveInt = Field(default=64, description="local digital config per circuit [D]")
    ppus: PositiveInt = Field(default=2, description="embedded SIMD processors, one per hemisphere [D]; unused")
    ppu_clock: float = Field(default=250e6, gt=0, description="Hz, default [D]")

    # -- neuron backend: refractory counter (§2.3) --------------------------------------------------------------
    refractory_counter_bits: PositiveInt = Field(default=8, description="refractory counter width [C]")
    refractory_clock_scales: PositiveInt = Field(default=16, description="clock = chip_clock / 2**(s+1), s < this [C]")
    refractory_clocks_per_hemisphere: PositiveInt = Field(default=2, description="'fast' and 'slow' clock [C]")
    holdoff_bits: PositiveInt = Field(default=4, description="reset holdoff counter width [C]")

    # -- calibration target ranges (§2.3) -----------------------------------------------------------------------
    v_leak_range: Range = Field(default=(50.0, 160.0), description="CADC LSB [C]")
    v_reset_range: Range = Field(default=(50.0, 160.0), description="CADC LSB [C]")
    v_threshold_range: Range = Field(default=(50.0, 220.0), description="CADC LSB [C]")
    tau_mem_range: Range = Field(default=(0.5e-6, 60e-6), description="s [C]")
    tau_syn_range: Range = Field(default=(0.3e-6, 30e-6), description="s, excitatory and inhibitory alike [C]")
    refractory_range: Range = Field(default=(40e-9, 32e-6), description="s [C]")
    holdoff_range: Range = Field(default=(0.0, 4e-6), description="s [C]")
    membrane_capacitance_range: Range = Field(default=(0.0, 63.0), description="LSB (0..~2.2 pF) [C]")
    i_synin_gm_range: Range = Field(default=(30.0, 800.0), description="CapMem LSB [C]")
    synapse_dac_bias_range: Range = Field(default=(30.0, 1022.0), description="CapMem LSB [C]")
    cadc_reliable_range: Range = Field(default=(30.0, 210.0), description="CADC LSB [C]")

    # -- calibration used, and the model <-> hardware maps (§2.2, §3.4) ----------------------------------------
    membrane_capacitance: float = Field(default=63.0, description="LSB, as in jaxsnn yinyang_bss2 [C]")
    i_synin_gm: float = Field(default=500.0, description="CapMem LSB, as in jaxsnn yinyang_bss2 [C]")
    synapse_dac_bias: float = Field(default=1000.0, description="CapMem LSB, as in jaxsnn yinyang_bss2 [C]")
    speedup: float = Field(default=1000.0, gt=0, description="model time / hardware time [D]")
    v_offset: float = Field(default=80.0, description="CADC LSB of model voltage 0 (V_leak of yinyang_bss2) [C]")
    v_scale: float = Field(default=70.0, gt=0, description="CADC LSB per model voltage unit (150 - 80) [C]")
    weight_scale: float = Field(
        default=58.0,
        gt=0,
        description="hardware weight per model weight unit at the reference v_scale (jaxsnn yinyang_bss2) [C]; "
        "it depends on the calibration",
    )
    weight_scale_reference: float = Field(
        default=70.0, gt=0, description="the v_scale (threshold distance, LSB) weight_scale was measured at [C]"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ChipSpec:
        problems = []
        if self.event_outputs * self.columns_per_event_output != self.columns:
            problems.append("event_outputs * columns_per_event_output must equal columns")
        if self.drivers_per_hemisphere * self.rows_per_driver != self.rows_per_hemisphere:
            problems.append("drivers_per_hemisphere * rows_per_driver must equal rows_per_hemisphere")
        if self.drivers_per_hemisphere % self.buses_per_hemisphere:
            problems.append("drivers_per_hemisphere must be a multiple of buses_per_hemisphere")
        elif self.drivers_per_bus > 1 << self.row_select_bits:
            problems.append("drivers per bus must be addressable by row_select_bits")
        if self.event_outputs % self.buses_per_hemisphere:
            problems.append("event_outputs must be a multiple of buses_per_hemisphere")
        if self.columns_per_event_output * self.hemispheres > 1 << self.label_bits:
            problems.append("one event output's neurons must be addressable by label_bits")
        for name in type(self).model_fields:
            if name.endswith("_range"):
                lo, hi = getattr(self, name)
                if lo > hi:
                    problems.append(f"{name}: low {lo} > high {hi}")
        if problems:
            raise ValueError("inconsistent ChipSpec: " + "; ".join(problems))
        return self

    # -- derived numbers ----------------------------------------------------------------------------------------
    @property
    def circuits(self) -> int:
        """Neuron circuits on the chip (512)."""
        return self.hemispheres * self.columns

    @property
    def drivers_per_bus(self) -> int:
        """Synapse drivers listening to one PADI bus (32)."""
        return self.drivers_per_hemisphere // self.buses_per_hemisphere

    @property
    def rows_per_bus(self) -> int:
        """Synapse rows reachable through one PADI bus (64)."""
        return self.drivers_per_bus * self.rows_per_driver

    @property
    def buses(self) -> int:
        """PADI buses on the chip (8)."""
        return self.hemispheres * self.buses_per_hemisphere

    @property
    def synapses(self) -> int:
        """Synapses on the chip (131072)."""
        return self.hemispheres * self.rows_per_hemisphere * self.columns

    @property
    def weight_max(self) -> int:
        """Largest synapse weight (63)."""
        return (1 << self.weight_bits) - 1

    @property
    def labels(self) -> int:
        """Distinct synapse labels (64): sources one row can tell apart."""
        return 1 << self.label_bits

    @property
    def timestamp(self) -> float:
        """FPGA spike-time resolution in seconds (8 ns)."""
        return 1.0 / self.fpga_clock

    @property
    def max_runtime(self) -> float:
        """Longest experiment in hardware seconds (2**32 FPGA cycles, ~34 s)."""
        return ((1 << self.timer_bits) - 1) / self.fpga_clock

    @property
    def default_weight_scale(self) -> float:
        """Hardware weight per model unit at this chip's default voltage map."""
        return self.weight_scale * self.v_scale / self.weight_scale_reference

    @property
    def weight_bound(self) -> float:
        """Largest model weight one synapse realises at the default scale (63 / 58, about 1.086)."""
        return self.weight_max / self.default_weight_scale

    def event_output(self, column: int) -> int:
        """The event output (crossbar input) of neuron column ``column``."""
        return column // self.columns_per_event_output

    def bus_of_event_output(self, e: int) -> int:
        """The PADI bus index (per hemisphere) that event output ``e`` reaches."""
        return e % self.buses_per_hemisphere

    def padi_output(self, hemisphere: int, bus: int) -> int:
        """Crossbar output number of PADI bus ``bus`` of ``hemisphere``."""
        return hemisphere * self.buses_per_hemisphere + bus

    def refractory_clock(self, scale: int) -> float:
        """Frequency of refractory clock setting ``scale`` (Hz)."""
        return self.chip_clock / (1 << (scale + 1))

    @property
    def crossbar_set(self) -> frozenset[tuple[int, int]]:
        """The crossbar node table as a set, for membership tests."""
        return frozenset(self.crossbar)

    def text(self) -> str:
        """One line: the chip's name, its key counts, and every field that differs from the real chip."""
        changed = [
            f"{k}={getattr(self, k)}"
            for k, f in type(self).model_fields.items()
            if k not in ("name", "crossbar") and getattr(self, k) != f.get_default(call_default_factory=True)
        ]
        if self.crossbar != default_crossbar():
            changed.append("crossbar=custom")
        head = (
            f"{self.name}: {self.circuits} circuits, {self.hemispheres}x{self.rows_per_hemisphere} rows, "
            f"{self.buses} PADI buses x {self.rows_per_bus} rows, {self.weight_bits}-bit weights"
        )
        return head + (f"; non-default: {', '.join(changed)}" if changed else "")

    def __str__(self) -> str:
        return self.text()

    def __hash__(self) -> int:
        return hash(self.model_dump_json())
