"""The layer-parallel schedule: first spikes of a whole population at once, no event loop.

For a ``lif`` population with ``max_spikes = 1`` fed only by earlier stages,
the membrane before its first spike is linear in the inputs. With the sorted
deliveries ``t_0 <= ... <= t_{E-1}`` (weights ``w_k``) and a closing event at
``t_max``, the state right after event ``k`` obeys the affine recurrence::

    (u_k, I_k) = M(t_k - t_{k-1}) (u_{k-1}, I_{k-1}) + (0, w_k)
    M(s) = [[alpha(s), beta(s)], [0, gamma(s)]]         (see _dynamics.free_coefficients)

whose prefix compositions an associative scan computes for every neuron in
``O(log E)`` depth. Interval ``k`` (``t_k`` to ``t_{k+1}``) holds a crossing iff
``u_k >= theta``, ``u_{k+1} >= theta`` (``u`` is continuous: inputs only jump ``I``),
or the peak exists and lies inside the interval. The first such interval is
found per neuron, and the solver runs once per neuron on its state. ``li``
populations in this schedule produce no spikes (their output is the trace).
"""

from __future__ import annotations

from typing import ClassVar

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ._dynamics import NeuronParams, free_coefficients
from ._events import SpikeBuffer, incoming
from ._solver import AbstractCrossingSolver
from ._sort import sort_by_time
from ._stage import AbstractStage

__all__ = ["LayerParallelStage", "first_spikes"]


def first_spikes(
    times: Array, weights: Array, t_max: Array, nrn: NeuronParams, solver: AbstractCrossingSolver
) -> tuple[Array, Array]:
    """First spike time of every neuron (``+inf`` if none before ``t_max``) and the current there.

    ``times``: ``[E]`` sorted delivery times (``+inf`` = none); ``weights``: ``[E, n]``.
    """
    n = weights.shape[1]
    dtype = weights.dtype
    if times.shape[0] == 0:
        return jnp.full((n,), jnp.inf, dtype), jnp.zeros((n,), dtype)
    valid = times < t_max
    t = jnp.concatenate([jnp.where(valid, times, t_max), t_max[None]])
    w = jnp.concatenate([jnp.where(valid[:, None], weights, 0.0), jnp.zeros((1, n), dtype)])
    dt = jnp.diff(t, prepend=jnp.zeros((1,), dtype))
    alpha, beta, gamma = free_coefficients(dt[:, None], nrn)

    # The recurrence is a sweep over this population's own (sorted) inputs, vectorized over
    # its neurons; on CPU a sequential scan beats an associative one for these lengths.
    def step(carry: tuple[Array, Array], x: tuple) -> tuple:
        u, i = carry
        a, b, g, wk = x
        u = a * u + b * i
        i = g * i + wk
        return (u, i), (u, i)

    zero = jnp.zeros((n,), dtype)
    _, (u, i) = lax.scan(step, (zero, zero), (alpha, beta, gamma, w), unroll=4)
    u_k, i_k, u_end = u[:-1], i[:-1], u[1:]
    t_k = t[:-1]
    span = t[1:] - t_k
    theta = nrn.theta
    flag = (u_k >= theta) | (u_end >= theta) | solver.peak_within(u_k, i_k, span[:, None], nrn)
    flag = flag & nrn.spiking
    k = jnp.argmax(flag, axis=0)
    hit = jnp.any(flag, axis=0)
    take = lambda x: jnp.take_along_axis(x, k[None, :], axis=0)[0]  # noqa: E731
    u0, i0 = take(u_k), take(i_k)
    s = solver.crossing(u0, i0, nrn)
    # A flagged interval always ends in a spike; a rounding-level disagreement puts it at the interval's end.
    s = jnp.minimum(s, span[k])
    t_spike = t_k[k] + s
    spiked = hit & (t_spike < t_max)
    s_safe = jnp.where(spiked, s, 0.0)
    current = i0 * jnp.exp(-s_safe / nrn.tau_syn)
    return jnp.where(spiked, t_spike, jnp.inf), jnp.where(spiked, current, 0.0)


class LayerParallelStage(AbstractStage):
    """Populations that spike at most once (or ``li`` readouts), each solved in parallel over its neurons."""

    strategy: ClassVar[str] = "layer-parallel"

    def __call__(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        out: dict[str, SpikeBuffer] = {}
        for pop in self.populations:
            if pop.kind != "lif":
                continue
            dtype = pop.nrn.tau_mem.dtype
            inc = incoming(pop.edges_in, {pop.name: 0}, pop.size, buffers, params, t_max, dtype)
            t_first, current = first_spikes(inc.times, inc.matrix[inc.rows], t_max, pop.nrn, pop.solver)
            times, _, order = sort_by_time(t_first)
            current = jnp.take_along_axis(current, order, axis=-1)
            spiked = jnp.isfinite(times)
            out[pop.name] = SpikeBuffer(
                times=times,
                neurons=jnp.where(spiked, order, -1).astype(jnp.int32),
                current=current,
                overflow=jnp.zeros((), bool),
            )
        return out
