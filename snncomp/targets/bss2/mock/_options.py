"""The options of ``compile_mock`` (target ``bss2-mock``): checked once, kept as a frozen :class:`MockOptions`.

:func:`parse_options` splits the keyword options into the emulator's own (:data:`OPTIONS`, with their
defaults and checks) and the bss2 pass options, which are passed to ``snncomp.pipeline("bss2")`` by
name; an option that is neither is an error naming both lists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ....errors import TargetError
from ....runtime import check_compile_options
from ._calibration_data import GainCalibration
from ._config import MockConfig

__all__ = ["ENGINES", "OPTIONS", "MockOptions", "parse_options"]

OPTIONS = (
    "t_max",
    "mock",
    "chip_seed",
    "trial_seed",
    "chip",
    "calibration",
    "spikes_per_neuron",
    "dtype",
    "step",
    "verify_each",
    "engine",
)
ENGINES = ("auto", "general", "layered")


@dataclass(frozen=True)
class MockOptions:
    """The emulator's own options of one ``compile_mock`` call, checked and defaulted (see ``compile_mock``)."""

    t_max: float | None
    mock: MockConfig
    chip_seed: int
    trial_seed: int
    chip: Any  # a ChipSpec, or None for the default chip
    calibration: GainCalibration | None
    spikes_per_neuron: int | None
    dtype: Any
    verify_each: bool
    step: int
    engine: Literal["auto", "general", "layered"]


def parse_options(options: dict[str, Any]) -> tuple[MockOptions, dict[str, Any]]:
    """``compile_mock``'s keyword options -> its own :class:`MockOptions` and the bss2 pass options."""
    from ....passes import pipeline

    pass_options = {k: v for k, v in options.items() if k not in OPTIONS}
    valid = sorted({f.name for p in pipeline("bss2") for f in dataclasses.fields(p)})
    unknown = sorted(k for k in pass_options if k not in valid)
    if unknown:
        raise TargetError(
            f"target 'bss2-mock' has no option {', '.join(map(repr, unknown))}; valid options: "
            f"{', '.join(OPTIONS)}, and the bss2 pass options {', '.join(valid)}"
        )
    t_max, dtype = check_compile_options(options)
    mock = options.get("mock") or MockConfig.ideal()
    if not isinstance(mock, MockConfig):
        raise TargetError(f"option mock must be a MockConfig (MockConfig.ideal() or .realistic()), got {mock!r}")
    engine = options.get("engine", "auto")
    if engine not in ENGINES:
        raise TargetError(f"engine must be one of {', '.join(map(repr, ENGINES))}, got {engine!r}")
    step = int(options.get("step", 16))
    if not 1 <= step <= 1024:
        raise TargetError(f"step must be 1..1024 FPGA ticks (the emulator's longest integration step), got {step!r}")
    calibration = options.get("calibration")
    if calibration is not None:
        from ..chip import ChipSpec

        if not isinstance(calibration, GainCalibration):
            raise TargetError(
                f"option calibration must be a GainCalibration (from calibrate_gain), got {type(calibration).__name__}"
            )
        chip = options.get("chip") or ChipSpec()
        why = calibration.matches(mock, int(options.get("chip_seed", 0)), chip)
        if why is not None:
            raise TargetError(f"option calibration does not belong to this chip: {why}")
    spn = options.get("spikes_per_neuron")
    if spn is not None and int(spn) < 1:
        raise TargetError(f"spikes_per_neuron must be >= 1, got {spn!r}")
    own = MockOptions(
        t_max=t_max,
        mock=mock,
        chip_seed=int(options.get("chip_seed", 0)),
        trial_seed=int(options.get("trial_seed", 0)),
        chip=options.get("chip"),
        calibration=calibration,
        spikes_per_neuron=None if spn is None else int(spn),
        dtype=dtype,
        verify_each=bool(options.get("verify_each", True)),
        step=step,
        engine=engine,
    )
    return own, pass_options
