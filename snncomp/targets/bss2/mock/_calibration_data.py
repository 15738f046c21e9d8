"""Gain-calibration data of an emulated chip: ``GainCalibration`` (trims, fingerprint, save/load),
``chip_fingerprint`` and ``circuits_of``.

Apart from the procedure that measures it (:mod:`._calibrate`), so that the executable, which applies
a calibration, does not depend on the code that makes one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..chip import ChipSpec
from ..config import HardwareConfig
from ._config import MockConfig

__all__ = ["GainCalibration", "chip_fingerprint", "circuits_of"]

_FPN = ("fpn_tau_mem", "fpn_tau_syn", "fpn_gain", "fpn_v_threshold", "fpn_v_leak", "fpn_v_reset")


@dataclass(frozen=True)
class GainCalibration:
    """Per-circuit trims of the synaptic gain of one emulated chip (``calibrate_gain``).

    ``exc``/``inh`` (``[hemispheres, columns]``) multiply each circuit's excitatory/inhibitory
    synaptic gain. ``residual_exc``/``residual_inh`` are the relative deviations of ``g / theta``
    from the design value measured *after* the last round of trims (what is left). The calibration
    belongs to ``chip_seed`` and to the fixed-pattern spreads it was measured with (``fpn``);
    ``compile(..., calibration=)`` refuses it for another chip. ``measured`` marks the circuits the
    measurement covered (the others have trim 1); the statistics are over those.
    """

    chip_seed: int
    fpn: tuple[tuple[str, float], ...]
    exc: np.ndarray
    inh: np.ndarray
    measured: np.ndarray
    residual_exc: np.ndarray
    residual_inh: np.ndarray
    before_exc: np.ndarray
    before_inh: np.ndarray
    step: float
    rounds: int
    tau_mem: float
    tau_syn: float
    fingerprint: str = ""

    def matches(self, mock: MockConfig, chip_seed: int, chip: ChipSpec) -> str | None:
        """``None`` if this calibration belongs to that chip, else the reason it does not."""
        if int(chip_seed) != self.chip_seed:
            return f"it was measured on chip_seed={self.chip_seed}, this executable runs chip_seed={chip_seed}"
        fpn = tuple((f, float(getattr(mock, f))) for f in _FPN)
        if fpn != self.fpn:
            return f"it was measured with fixed-pattern spreads {dict(self.fpn)}, this mock has {dict(fpn)}"
        shape = (chip.hemispheres, chip.columns)
        if self.exc.shape != shape:
            return f"it covers {self.exc.shape} circuits, this chip has {shape}"
        if self.fingerprint != chip_fingerprint(mock, chip_seed, chip):
            # Same seed and spreads but another draw: the emulator's mismatch model changed since.
            return "its chip's mismatch draw differs from this emulator's (measured by another version); measure again"
        return None

    def text(self) -> str:
        """One line: the spread of ``g / theta`` before and after the trims."""

        def pct(a: np.ndarray) -> str:
            return f"{100 * float(np.std(a[self.measured])):.2f} %"

        return (
            f"gain calibration of chip_seed={self.chip_seed} ({int(self.measured.sum())} circuits, "
            f"{self.rounds} round(s), trim step {self.step:g}): "
            f"spread of g/theta exc {pct(self.before_exc)} -> {pct(self.residual_exc)}, "
            f"inh {pct(self.before_inh)} -> {pct(self.residual_inh)}"
        )

    def __str__(self) -> str:
        return self.text()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_json`` reads it back)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else ([list(p) for p in v] if f.name == "fpn" else v)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GainCalibration:
        """Inverse of :meth:`to_json`."""
        kw = dict(data)
        kw["fpn"] = tuple((str(k), float(v)) for k, v in kw["fpn"])
        for f in ("exc", "inh", "residual_exc", "residual_inh", "before_exc", "before_inh"):
            kw[f] = np.asarray(kw[f], np.float64)
        kw["measured"] = np.asarray(kw["measured"], bool)
        return cls(**kw)

    def save(self, path: str | Path) -> None:
        """Write as JSON."""
        Path(path).write_text(json.dumps(self.to_json()))

    @classmethod
    def load(cls, path: str | Path) -> GainCalibration:
        """Read a calibration written by :meth:`save`."""
        return cls.from_json(json.loads(Path(path).read_text()))


def chip_fingerprint(mock: MockConfig, chip_seed: int, chip: ChipSpec) -> str:
    """A short hash of the emulated chip's fixed-pattern draw: equal exactly when the chip is the same."""
    import hashlib
    from types import SimpleNamespace

    from ._neurons import circuit_deviations

    # circuit_deviations reads only ``config.chip``.
    dev = circuit_deviations(cast(HardwareConfig, SimpleNamespace(chip=chip)), mock, int(chip_seed))
    return hashlib.sha256(np.round(dev, 9).tobytes()).hexdigest()[:16]


def circuits_of(config: HardwareConfig) -> list[int]:
    """The circuit ids (``hemisphere * columns + column``) a ``HardwareConfig``'s neurons occupy."""
    cols = config.chip.columns
    return sorted({n.hemisphere * cols + n.column + k for n in config.neurons for k in range(n.width)})
