"""The stage interface shared by the two schedules."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
from jaxtyping import Array

from ._dynamics import NeuronParams
from ._events import EdgeSpec, SpikeBuffer
from ._solver import AbstractCrossingSolver

__all__ = ["AbstractStage", "PopulationPlan"]


class PopulationPlan(eqx.Module):
    """How one population is simulated: its constants, solver, buffer and incoming projections."""

    name: str = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    size: int = eqx.field(static=True)
    buffer: int = eqx.field(static=True)
    nrn: NeuronParams
    solver: AbstractCrossingSolver
    edges_in: tuple[EdgeSpec, ...]


class AbstractStage(eqx.Module):
    """One step of the execution plan: computes the spikes of its populations for one sample.

    ``__call__(params, buffers, t_max)`` reads the buffers of inputs and earlier
    stages and returns a :class:`SpikeBuffer` per spiking population of the
    stage. It is a pure function of the weights, delays and upstream spike
    times, which is where an adjoint (``jax.custom_vjp``) attaches: the returned
    buffers hold every spike time and the current at each spike.
    """

    index: int = eqx.field(static=True)
    populations: tuple[PopulationPlan, ...]
    strategy: ClassVar[str]

    @abc.abstractmethod
    def __call__(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        """The spikes of this stage's populations."""

    def describe(self) -> list[str]:
        """One line per population for ``Executable.report()``."""
        lines = []
        for p in self.populations:
            ins = ", ".join(e.key for e in p.edges_in) or "none"
            solver = p.solver.name if p.kind == "lif" else "none (no threshold)"
            lines.append(
                f"{p.name}: {p.kind}[{p.size}] buffer={p.buffer} solver={solver} in=[{ins}] "
                f"params={'uniform' if p.nrn.tau_mem.shape[0] == 1 else 'per-neuron'}"
            )
        return lines
