"""One error hierarchy for snncomp.

Every error a user can meet derives from :class:`SnnCompError`, so a caller can
catch all of them with one ``except``. Errors that carry several problems keep
them as a list of :class:`Diagnostic` (path + message), and print one per line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BufferGrowthWarning",
    "BufferOverflowError",
    "DSLError",
    "Diagnostic",
    "IRError",
    "InitializerError",
    "InputError",
    "InputWarning",
    "PassError",
    "PipelineError",
    "PopulationError",
    "PrecisionWarning",
    "SnnCompError",
    "TargetError",
]


@dataclass(frozen=True)
class Diagnostic:
    """One problem: where it is (``edges[2].weight``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SnnCompError(Exception):
    """Base class of every error raised by snncomp."""


class IRError(SnnCompError, ValueError):
    """An IR document or network is invalid; ``diagnostics`` lists every problem."""

    def __init__(self, summary: str, diagnostics: list[Diagnostic] | None = None):
        self.summary = summary
        self.diagnostics = list(diagnostics or [])
        super().__init__(self._render())

    def _render(self) -> str:
        if not self.diagnostics:
            return self.summary
        lines = [self.summary] + [f"  - {d}" for d in self.diagnostics]
        return "\n".join(lines)


class DSLError(SnnCompError, ValueError):
    """A DSL call was misused; the message points at the user's line."""


class InitializerError(SnnCompError, TypeError):
    """A weight initializer (``snncomp.init``) was called with arguments of the wrong kind (no seed or key).

    Also a ``TypeError``, as Python raises for a bad call; a bad value (``uniform`` with ``high <= low``)
    raises :class:`DSLError`.
    """


class PassError(SnnCompError):
    """A compiler pass failed; the message names the pass and what ran before it."""


class PipelineError(SnnCompError, ValueError):
    """A pipeline description names an unknown pass or option."""


class TargetError(SnnCompError):
    """A target is unavailable or cannot run the given network."""


class InputError(SnnCompError, ValueError):
    """Run-time inputs (spikes, parameters, options) do not fit the compiled network."""


class PopulationError(SnnCompError, KeyError):
    """A population was asked for that the result does not hold (unknown, or removed by a pass)."""

    def __str__(self) -> str:  # KeyError would show the message's repr
        return str(self.args[0]) if self.args else ""


class InputWarning(UserWarning):
    """Valid run-time inputs that are very likely a mistake (e.g. every spike outside the window)."""


class PrecisionWarning(UserWarning):
    """A model needs more precision than the chosen dtype has (e.g. an extreme ``tau_syn / tau_mem`` in float32)."""


class BufferGrowthWarning(UserWarning):
    """An automatically sized spike buffer overflowed and was grown (the run was repeated with room)."""


class BufferOverflowError(SnnCompError, RuntimeError):
    """A population emitted more spikes than its event buffer holds."""
