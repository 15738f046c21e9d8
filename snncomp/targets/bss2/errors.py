"""Errors of the BrainScaleS-2 target: a network that does not fit, a configuration that is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import SnnCompError

__all__ = ["ConfigError", "ParameterError", "ResourceError", "Violation", "WeightSaturationWarning"]


@dataclass(frozen=True)
class Violation:
    """One exceeded limit or broken rule.

    ``resource`` names the chip resource (``circuits``, ``rows on PADI bus 2 of hemisphere 0``, …),
    ``demand`` and ``limit`` are numbers in that resource's unit, ``responsible`` names the
    populations / projections / neurons that cause the demand, ``check`` is the number of the
    rule in ``BSS2_SPEC.md`` §5.2 (0 when the rule is not one of those), ``hint`` says what to change.
    """

    resource: str
    demand: float | None = None
    limit: float | None = None
    responsible: tuple[str, ...] = ()
    check: int = 0
    hint: str = ""
    detail: str = ""

    def __str__(self) -> str:
        parts = [self.resource]
        if self.demand is not None and self.limit is not None:
            parts.append(f"demand {_num(self.demand)} > limit {_num(self.limit)}")
        if self.detail:
            parts.append(self.detail)
        if self.responsible:
            parts.append("from " + ", ".join(self.responsible))
        text = ": ".join(parts[:2]) + "".join(f"; {p}" for p in parts[2:])
        if self.check:
            text += f" [check {self.check}]"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


@dataclass(eq=False)
class _ViolationsError(SnnCompError):
    summary: str
    violations: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"{self.summary} ({len(self.violations)} problem(s))"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


class ResourceError(_ViolationsError):
    """The network does not fit on the chip; ``violations`` lists every exceeded limit at once."""


class ParameterError(_ViolationsError):
    """A neuron parameter or option maps outside the chip's calibration range; every one is listed."""


class ConfigError(_ViolationsError):
    """A ``HardwareConfig`` breaks a chip rule or does not realise the intended connectivity."""


class LatencySkewWarning(UserWarning):
    """In multi-chip mode some neurons read spikes that crossed different numbers of chips: the inter-chip
    latency shifts them against each other, so the chips compute another network than one chip would."""


class WeightSaturationWarning(UserWarning):
    """Weights beyond the chip's range were clipped by more than one step: the chip computes another network."""
