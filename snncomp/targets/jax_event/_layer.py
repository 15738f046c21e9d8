"""The layer-parallel schedule: first spikes of a whole population at once, no event loop.

For a ``lif`` population with ``max_spikes = 1`` fed only by earlier stages,
the membrane before its first spike is linear in the inputs (no reset has
happened yet). With the sorted deliveries ``t_0 <= ... <= t_{E-1}`` (weights
``w_k``) and a closing event at ``t_max``, the state right after event ``k``
obeys the linear recurrence::

    (u_k, I_k) = M(t_k - t_{k-1}) (u_{k-1}, I_{k-1}) + (0, w_k)
    M(s) = [[alpha(s), beta(s)], [0, gamma(s)]]         (see _dynamics.free_coefficients)

Interval ``k`` (``t_k`` to ``t_{k+1}``) holds a crossing iff ``u_k >= theta``,
``u_{k+1} >= theta`` (``u`` is continuous: inputs only jump ``I``), or the peak
exists and lies inside the interval (``Solver.peak_within``). One sweep over the
population's own sorted inputs, vectorized over all its neurons, applies the
recurrence and records the state at the start of each neuron's first flagged
interval; then the solver runs once per neuron. There is no global event loop
and no reset logic. ``li`` populations in this schedule produce no spikes
(their output is the trace).

(An associative scan over the affine maps, prefix sums of ``w exp(t/tau)`` and
the materialized ``[E, n]`` states were all measured slower on CPU: XLA's
per-kernel cost and memory traffic dominate at these sizes.)
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ...ir import SPIKING_KINDS
from ._dynamics import NeuronParams, free_coefficients
from ._events import SpikeBuffer, incoming
from ._layer_adjoint import layer_backward
from ._native import layer_reason as _native_reason
from ._native import run_layer as _native_run
from ._solver import AbstractCrossingSolver
from ._sort import sort_by_time
from ._stage import AbstractStage, PopulationPlan

__all__ = ["LayerParallelStage", "first_spikes", "first_spikes_from_rows"]


def _first_crossing_sweep(
    t: Array, rows: Array, matrix: Array, nrn: NeuronParams, solver: AbstractCrossingSolver
) -> tuple[Array, Array, Array, Array, Array]:
    """One sweep over the sorted events that finds, per neuron, the first interval holding a crossing.

    ``t``: ``[E + 1]`` event times ending with ``t_max``; event ``k`` adds ``matrix[rows[k]]`` to
    ``I``. Nothing of size ``[E, n]`` is stored (the weight row is fetched inside the loop): for
    wide layers that memory traffic costs more than the loop. Returns ``(hit, u0, i0, t0, span0)``,
    the state at the start of the first flagged interval and that interval.
    """
    dtype = matrix.dtype
    n = matrix.shape[1]
    span = jnp.diff(t)
    alpha, beta, gamma = free_coefficients(span[:, None], nrn)
    zero = jnp.zeros((n,), dtype)
    u_first, i_first = nrn.deliver(*nrn.initial_state(n), matrix[rows[0]])
    init = (u_first, i_first, jnp.full((n,), span.shape[0], jnp.int32), zero, zero)
    index = jnp.arange(span.shape[0], dtype=jnp.int32)

    def step(carry: tuple, x: tuple) -> tuple:
        u, i, first, cu, ci = carry
        a, b, g, row, k, sk = x
        u_end = a * u + b * i
        if nrn.has_drift:
            u_end = u_end + nrn.drift * sk
        flag = (u >= nrn.theta) | (u_end >= nrn.theta) | solver.peak_within(u, i, sk, nrn, decay=a)
        if nrn.has_jump:
            # Inputs of one instant are summed before the threshold test: an empty interval holds no crossing.
            flag = flag & (sk > 0)
        new = flag & (first == span.shape[0]) & nrn.spiking
        u_next, i_next = nrn.deliver(u_end, g * i, matrix[row])
        return (
            u_next,
            i_next,
            jnp.where(new, k, first),
            jnp.where(new, u, cu),
            jnp.where(new, i, ci),
        ), None

    xs = (alpha, beta, gamma, rows[1:], index, span)
    # Unrolling 4 steps per loop iteration saves loop overhead (measured ~8% on CPU).
    (_, _, first, cu, ci), _ = lax.scan(step, init, xs, unroll=4)
    hit = first < span.shape[0]
    k = jnp.minimum(first, span.shape[0] - 1)
    return hit, cu, ci, t[k], span[k]


def first_spikes_from_rows(
    times: Array, rows: Array, matrix: Array, t_max: Array, nrn: NeuronParams, solver: AbstractCrossingSolver
) -> tuple[Array, Array]:
    """First spike time of every neuron (``+inf`` if none before ``t_max``) and the current there.

    ``times``: ``[E]`` sorted delivery times (``+inf`` = none); delivery ``k`` adds the weight row
    ``matrix[rows[k]]``; the last row of ``matrix`` must be zeros (it pads).
    """
    n = matrix.shape[1]
    dtype = matrix.dtype
    if times.shape[0] == 0:
        return jnp.full((n,), jnp.inf, dtype), jnp.zeros((n,), dtype)
    zero_row = matrix.shape[0] - 1
    valid = times < t_max
    t = jnp.concatenate([jnp.where(valid, times, t_max), t_max[None]])
    rows = jnp.concatenate([jnp.where(valid, rows, zero_row), jnp.full((1,), zero_row, rows.dtype)])
    if nrn.has_init or nrn.has_drift:  # a biased neuron can cross before the first input: start at t = 0
        t = jnp.concatenate([jnp.zeros((1,), t.dtype), t])
        rows = jnp.concatenate([jnp.full((1,), zero_row, rows.dtype), rows])
    hit, u0, i0, t0, span0 = _first_crossing_sweep(t, rows, matrix, nrn, solver)
    return _finish(hit, u0, i0, t0, span0, t_max, nrn, solver)


def first_spikes(
    times: Array, weights: Array, t_max: Array, nrn: NeuronParams, solver: AbstractCrossingSolver
) -> tuple[Array, Array]:
    """:func:`first_spikes_from_rows` with the weight row of each delivery given: ``weights`` is ``[E, n]``."""
    matrix = jnp.concatenate([weights, jnp.zeros((1, weights.shape[1]), weights.dtype)])
    rows = jnp.arange(times.shape[0], dtype=jnp.int32)
    return first_spikes_from_rows(times, rows, matrix, t_max, nrn, solver)


def _finish(
    hit: Array,
    u0: Array,
    i0: Array,
    t0: Array,
    span0: Array,
    t_max: Array,
    nrn: NeuronParams,
    solver: AbstractCrossingSolver,
) -> tuple[Array, Array]:
    """Solve once per neuron in its first flagged interval."""
    s = solver.crossing(u0, i0, nrn)
    # A flagged interval always ends in a spike; a rounding-level disagreement puts it at the interval's end.
    s = jnp.minimum(s, span0)
    t_spike = t0 + s
    spiked = hit & (t_spike < t_max)
    s_safe = jnp.where(spiked, s, 0.0)
    current = i0 * jnp.exp(-s_safe / nrn.tau_syn)
    return jnp.where(spiked, t_spike, jnp.inf), jnp.where(spiked, current, 0.0)


class LayerParallelStage(AbstractStage):
    """Populations that spike at most once (or ``li`` readouts), each solved in parallel over its neurons."""

    strategy: ClassVar[str] = "layer-parallel"
    loop: str = eqx.field(static=True, default="auto")
    """``"vectorized"``: the sweep above in XLA. ``"auto"``/``"native"``: the same sweep in C
    (``native/layer.c``, an XLA custom call) for the populations it covers (:meth:`native_reason`).
    The lowering sets ``"vectorized"`` under an adjoint that differentiates the forward pass itself."""

    def native_reason(self, pop: PopulationPlan) -> str | None:
        """Why ``pop``'s first spikes are not computed in C (None: they are)."""
        if self.loop == "vectorized":
            return "event_loop='vectorized' or autodiff adjoint"
        return _native_reason(pop)

    def describe(self) -> list[str]:
        lines = super().describe()
        for p in self.populations:
            if p.kind in SPIKING_KINDS:
                why = self.native_reason(p)
                lines.append(f"{p.name} first spikes: {'native (C)' if why is None else 'vectorized: ' + why}")
        return lines

    def eventprop(
        self,
        params: dict,
        buffers: dict[str, SpikeBuffer],
        out: dict[str, SpikeBuffer],
        ct: dict[str, Array],
        t_max: Array,
    ) -> tuple[dict, dict[str, Array]]:
        return layer_backward(self, params, buffers, out, ct, t_max)

    def __call__(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        out: dict[str, SpikeBuffer] = {}
        for pop in self.populations:
            if pop.kind not in SPIKING_KINDS:
                continue
            dtype = pop.nrn.tau_mem.dtype
            if self.native_reason(pop) is None:
                # The kernel sorts the deliveries itself (stably, as sort_by_time): no sorting network in XLA.
                inc = incoming(pop.edges_in, {pop.name: 0}, pop.size, buffers, params, t_max, dtype, sort=False)
                ordered = len(pop.edges_in) <= 1 and all(buffers[e.source].sorted for e in pop.edges_in)
                times, neurons, current = _native_run(
                    pop, pop.nrn, inc.times, inc.rows, inc.matrix, t_max, presorted=ordered
                )
                out[pop.name] = SpikeBuffer(times=times, neurons=neurons, current=current, overflow=jnp.zeros((), bool))
                continue
            inc = incoming(pop.edges_in, {pop.name: 0}, pop.size, buffers, params, t_max, dtype)
            t_first, current = first_spikes_from_rows(inc.times, inc.rows, inc.matrix, t_max, pop.nrn, pop.solver)
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
