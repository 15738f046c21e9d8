"""The abstract ``Executable``: what every target's compiled network offers (``params``, ``run``, ``apply``, ...)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ._params import Params
from ._recording import Recording, Report
from ._spikes import Spikes


class Executable(abc.ABC):
    """A compiled network, ready to run on its target."""

    target: str
    # Whether ``apply``'s ``key`` draws noise (then training passes a fresh key per step).
    uses_key: bool = False

    @property
    @abc.abstractmethod
    def params(self) -> Params:
        """Trainable parameters, a :class:`Params`: ``weight`` (edge key -> ``[src, tgt]``), ``delay`` (edge key ->
        scalar) and ``bias`` (population -> ``[n]``) where the target has biases."""

    @property
    @abc.abstractmethod
    def lowered(self) -> Any:
        """The target's artifact (``EventProgram`` for ``jax``)."""

    @abc.abstractmethod
    def run(
        self,
        inputs: Mapping[str, Spikes],
        params: Params | Mapping[str, Any] | None = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trace_times: Any = None,
        trace_populations: Sequence[str] | None = None,
    ) -> Recording:
        """Simulate the network on ``inputs`` (one ``Spikes`` per input population, batch axes first).

        ``params`` (a :class:`Params` or a dict of its structure) defaults to :attr:`params`; ``t_max``
        overrides the compile-time window; ``on_overflow="raise"`` raises :class:`BufferOverflowError` when a
        spike buffer was too small (``"flag"``: only ``Recording.overflow`` says so); ``trace_times``
        (``[G]`` seconds) with ``trace_populations`` records membrane traces where the target can. A target
        may take more keywords (``bss2-mock``: ``trial``, ``key``).
        """

    @abc.abstractmethod
    def report(self) -> Report:
        """Schedule, stages, buffer sizes and resources."""

    def apply(
        self,
        params: Params | Mapping[str, Any] | None,
        inputs: Mapping[str, Spikes],
        key: Any = None,
        *,
        t_max: float | None = None,
        trace_times: Any = None,
        trace_populations: Sequence[str] | None = None,
    ) -> Recording:
        """``run`` with the parameters first and overflow only flagged: the pure form for ``jax.grad``/``train.fit``.

        ``key`` (a JAX PRNG key) draws the run's noise on a target that has some (``bss2-mock``'s
        trial-to-trial noise); a deterministic target ignores it, so one call works on every target.
        """
        del key  # deterministic by default; a noisy target overrides apply
        return self.run(
            inputs,
            params,
            t_max=t_max,
            on_overflow="flag",
            trace_times=trace_times,
            trace_populations=trace_populations,
        )
