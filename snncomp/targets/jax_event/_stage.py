"""The stage interface shared by the two schedules."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import numpy as np
from jaxtyping import Array

from ...ir import SPIKING_KINDS
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
    reverse_differentiable: ClassVar[bool] = True
    """Whether plain JAX autodiff can differentiate the forward pass (no ``while_loop``)."""

    @abc.abstractmethod
    def __call__(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        """The spikes of this stage's populations."""

    @abc.abstractmethod
    def eventprop(
        self,
        params: dict,
        buffers: dict[str, SpikeBuffer],
        out: dict[str, SpikeBuffer],
        ct: dict[str, Array],
        t_max: Array,
    ) -> tuple[dict, dict[str, Array]]:
        """The EventProp backward pass: ``(dL/d params, dL/d upstream spike times)``.

        ``params`` holds what the stage reads (:meth:`edges`' weights and delays, its biases), ``out`` the
        stage's own spikes, ``ct`` their cotangents (zero at padding).
        """

    def edges(self) -> tuple[EdgeSpec, ...]:
        """The projections whose weights and delays this stage reads."""
        return tuple(e for p in self.populations for e in p.edges_in)

    def upstream(self) -> tuple[str, ...]:
        """The populations (and inputs) outside this stage whose spikes it reads."""
        own = {p.name for p in self.populations}
        return tuple(sorted({e.source for e in self.edges() if e.source not in own}))

    def biased(self, params: dict) -> AbstractStage:
        """This stage with its neurons' constants for ``params["bias"]`` (unchanged without that group)."""
        bias = params.get("bias")
        if not bias:
            return self
        return eqx.tree_at(
            lambda s: [p.nrn for p in s.populations],
            self,
            [p.nrn.with_bias(bias[p.name]) for p in self.populations],
        )

    def describe(self) -> list[str]:
        """One line per population for ``Executable.report()``."""
        lines = []
        for p in self.populations:
            ins = ", ".join(e.key for e in p.edges_in) or "none"
            solver = p.solver.name if p.kind in SPIKING_KINDS else "none (no threshold)"
            lines.append(
                f"{p.name}: {p.kind}[{p.size}] buffer={p.buffer} solver={solver} in=[{ins}] "
                f"params={_params_label(p.nrn)}"
            )
        return lines


# The packed columns of NeuronParams, named as the IR names the parameters they come from.
_PARAM_COLUMNS = (
    ("tau_mem", "tau_mem"),
    ("tau_syn", "tau_syn"),
    ("theta", "v_threshold"),
    ("u_reset", "v_reset"),
    ("v_leak", "v_leak"),
    ("t_refrac", "t_refrac"),
    ("max_spikes", "max_spikes"),
)


def _params_label(nrn: NeuronParams) -> str:
    """``uniform``, or ``per-neuron (tau_syn, v_threshold)``: which parameters vary across the population.

    :meth:`NeuronParams.build` shrinks a uniform column to ``[1]``, so a longer column is per-neuron.
    ``theta`` and ``u_reset`` are measured from ``v_leak`` and are named after the IR parameters
    ``v_threshold`` and ``v_reset``; with a per-neuron ``v_leak`` they vary with it, and are named only
    when the absolute potential (``theta + v_leak``) varies too.
    """
    leak = nrn.v_leak
    varying = []
    for column, label in _PARAM_COLUMNS:
        x = getattr(nrn, column)
        if x.shape[0] <= 1:
            continue
        if column in ("theta", "u_reset") and leak.shape[0] > 1 and _constant(x, leak):
            continue
        varying.append(label)
    return f"per-neuron ({', '.join(varying)})" if varying else "uniform"


def _constant(relative: Array, leak: Array) -> bool:
    """Whether ``relative + leak`` is one value (to a few ulps of the packed dtype)."""
    try:
        rel, lk = np.asarray(relative), np.asarray(leak)
    except Exception:  # a traced plan: its values are unknown, so call the column per-neuron
        return False
    absolute = rel.astype(np.float64) + lk.astype(np.float64)
    size = max(float(np.abs(rel).max()), float(np.abs(lk).max()))
    return bool(np.ptp(absolute) <= 8 * np.finfo(rel.dtype).eps * size)
