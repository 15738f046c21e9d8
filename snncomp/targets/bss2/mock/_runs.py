"""What the emulator's executables share: ``run`` and ``apply`` are :meth:`run_with_health` without the health."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, Literal

from ....runtime import Executable, Params, Recording, Spikes
from ._health import MockHealth

__all__ = ["EmulatorExecutable"]


class EmulatorExecutable(Executable):
    """An executable of the chip emulator (one chip or several partitions): every run also counts health."""

    @abc.abstractmethod
    def run_with_health(
        self,
        inputs: Mapping[str, Spikes],
        params: Params | Mapping[str, Any] | None = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trial: int | Any | None = None,
        key: Any = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> tuple[Recording, MockHealth]:
        """:meth:`run`, also returning the run's :class:`MockHealth` (per sample)."""

    def run(
        self,
        inputs: Mapping[str, Spikes],
        params: Params | Mapping[str, Any] | None = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trial: int | Any | None = None,
        key: Any = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> Recording:
        """Run ``inputs`` on the emulated chip over ``[0, t_max)``; ``vmap``-ed, one ``jit`` trace per input shape.

        ``params`` (default :attr:`params`) are re-quantized into the existing routing. ``t_max``
        overrides the compile-time window (no retracing). ``on_overflow="raise"`` raises
        :class:`~snncomp.runtime.BufferOverflowError` when a readout buffer was too small.

        Trial-to-trial noise: ``trial`` (an integer, traced or not) picks one draw of the sequence
        fixed by ``trial_seed``; ``key`` (a JAX PRNG key) picks a draw directly. With neither, a
        counter advances on every call, so repeated runs differ as on the chip -- but inside
        ``jit``/``grad`` the counter is read once, when the function is traced, and every call of
        the compiled function would repeat that draw: pass ``trial`` or ``key`` as an argument of
        the jitted function there (a warning says so otherwise). The run's health counters are kept
        in ``health``. Membrane traces are refused (the chip's readout has no such probe here).
        """
        return self.run_with_health(
            inputs,
            params,
            t_max=t_max,
            on_overflow=on_overflow,
            trial=trial,
            key=key,
            trace_times=trace_times,
            trace_populations=trace_populations,
        )[0]

    def apply(
        self,
        params: Params | Mapping[str, Any] | None,
        inputs: Mapping[str, Spikes],
        key: Any = None,
        *,
        t_max: float | None = None,
        trial: int | Any | None = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> Recording:
        """``run`` with the parameters first and overflow only flagged, for ``jax.grad``/``train.fit``.

        ``key`` draws the trial-to-trial noise (``train.fit`` passes a fresh key every step, so each
        training step in the loop sees new noise, as on the chip).
        """
        return self.run(
            inputs,
            params,
            t_max=t_max,
            on_overflow="flag",
            trial=trial,
            key=key,
            trace_times=trace_times,
            trace_populations=trace_populations,
        )
