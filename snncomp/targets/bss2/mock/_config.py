"""``MockConfig``: which imperfections of the chip the emulator models, and how strongly.

Every field is a physical effect with its unit; the two presets are the ends that matter:
:meth:`MockConfig.ideal` (a perfect chip: no mismatch, no noise, no delay, but the chip's
quantizations and event-rate limit kept) and :meth:`MockConfig.realistic` (the defaults of
``BSS2_SPEC.md`` §5.1; values the spec marks unconfirmed are flagged ``[U]`` in their description and
listed in ``docs/bss2.md``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MockConfig"]


class MockConfig(BaseModel):
    """Imperfections of the emulated chip (immutable).

    Fixed-pattern noise is drawn once per circuit from ``chip_seed`` (a chip), so it follows the
    placement: a neuron moved to another circuit gets that circuit's deviations. Relative spreads
    multiply (``tau * (1 + spread * N(0, 1))``), offsets add (``V + offset * N(0, 1)`` in CADC LSB).
    Trial-to-trial noise is drawn per run from ``trial_seed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- fixed-pattern noise (per circuit, frozen per chip_seed; spec §5 item 3) --------------------------------
    fpn_tau_mem: float = Field(default=0.0, ge=0, description="relative spread of tau_mem [U]")
    fpn_tau_syn: float = Field(
        default=0.0, ge=0, description="relative spread of tau_syn, excitatory and inhibitory drawn separately [U]"
    )
    fpn_gain: float = Field(
        default=0.0, ge=0, description="relative spread of the synaptic gain (PSP height per weight), exc/inh [U]"
    )
    fpn_v_threshold: float = Field(default=0.0, ge=0, description="std of the threshold offset, CADC LSB [U]")
    fpn_v_leak: float = Field(default=0.0, ge=0, description="std of the leak-potential offset, CADC LSB [U]")
    fpn_v_reset: float = Field(default=0.0, ge=0, description="std of the reset-potential offset, CADC LSB [U]")

    # -- trial-to-trial noise (per run, trial_seed; spec §5 item 5) ---------------------------------------------
    jitter: float = Field(
        default=0.0, ge=0, description="std of the Gaussian jitter of recorded spike times, hardware s (jaxsnn mock)"
    )
    threshold_noise: float = Field(
        default=0.0, ge=0, description="std of the threshold, redrawn per neuron and spike, CADC LSB [U]"
    )

    # -- timing (spec §3.6, §2.3) -------------------------------------------------------------------------------
    readout_delay: float = Field(
        default=0.0, ge=0, description="constant latency added to recorded spike times, hardware s (jaxsnn: 80 ns)"
    )
    quantize_timestamps: bool = Field(
        default=True,
        description="record spike times in whole FPGA cycles (8 ns), as the chip does; False records the exact "
        "crossing times, which no chip does (for comparing gradients with the software model)",
    )
    refractory_clock_phase: bool = Field(
        default=False,
        description="refractory counter counts edges of its clock, so the period is shortened by the clock phase "
        "of the spike [U]; False: exactly counter / clock",
    )

    # -- event path (spec §1.4, §3.7) ---------------------------------------------------------------------------
    rate_limit: bool = Field(
        default=True, description="one event per PADI bus (so per synapse driver) per FPGA clock cycle (8 ns) [D]"
    )
    bus_queue: int = Field(
        default=8, ge=0, description="events that may wait for a busy PADI bus before further ones are dropped [U]"
    )

    @classmethod
    def ideal(cls) -> MockConfig:
        """A perfect chip: no mismatch, no noise, no readout delay; quantizations and the event-rate limit kept."""
        return cls()

    @classmethod
    def realistic(cls) -> MockConfig:
        """Defaults of ``BSS2_SPEC.md`` §5.1 (assumptions where the spec marks them unconfirmed)."""
        return cls(
            fpn_tau_mem=0.03,
            fpn_tau_syn=0.03,
            fpn_gain=0.05,
            fpn_v_threshold=2.0,
            fpn_v_leak=2.0,
            fpn_v_reset=2.0,
            jitter=1e-7,
            threshold_noise=0.5,
            readout_delay=8e-8,
            refractory_clock_phase=True,
        )

    @property
    def has_fpn(self) -> bool:
        """Whether any fixed-pattern noise is drawn."""
        return any(
            getattr(self, f) > 0
            for f in ("fpn_tau_mem", "fpn_tau_syn", "fpn_gain", "fpn_v_threshold", "fpn_v_leak", "fpn_v_reset")
        )

    @property
    def has_trial_noise(self) -> bool:
        """Whether runs differ from trial to trial (spike-time jitter or threshold noise)."""
        return self.jitter > 0 or self.threshold_noise > 0

    def text(self) -> str:
        """One line: every field that differs from :meth:`ideal`."""
        base = MockConfig()
        changed = [f"{k}={getattr(self, k)}" for k in type(self).model_fields if getattr(self, k) != getattr(base, k)]
        return "ideal" if not changed else ", ".join(changed)

    def __str__(self) -> str:
        return self.text()
