"""Membrane and current traces on a user's time grid, from the closed form.

After a run every event that touched a population is known: its incoming
deliveries and its own spikes. The trace replays them in time order together
with the grid points (a ``lax.scan`` that jumps from event to event with the
exact solution, never a time step) and reads ``(v, I)`` at each grid point.
Values are right-continuous: at a delivery time ``I`` (or ``v``, with
instantaneous synapses) already includes the jump, at a spike time ``v`` is
already ``v_reset``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ._dynamics import NeuronParams, evolve
from ._events import Incoming, SpikeBuffer

__all__ = ["trace"]

_DELIVERY, _SPIKE, _SAMPLE, _NOOP = 0, 1, 2, 3


def trace(
    nrn: NeuronParams,
    inc: Incoming,
    spikes: SpikeBuffer | None,
    grid: Array,
    t_max: Array,
) -> tuple[Array, Array]:
    """``(v, I)``, each ``[G, n]``, at the times ``grid`` (any order, ``>= 0``)."""
    n = inc.matrix.shape[1]
    dtype = inc.matrix.dtype
    g = grid.shape[0]
    t_end = jnp.maximum(t_max, jnp.max(grid)) if g else t_max
    parts_t = [jnp.where(jnp.isfinite(inc.times), inc.times, t_end)]
    parts_k = [jnp.where(jnp.isfinite(inc.times), _DELIVERY, _NOOP)]
    parts_a = [inc.rows]
    if spikes is not None:
        ok = spikes.neurons >= 0
        parts_t.append(jnp.where(ok, spikes.times, t_end))
        parts_k.append(jnp.where(ok, _SPIKE, _NOOP))
        parts_a.append(jnp.maximum(spikes.neurons, 0))
    parts_t.append(grid.astype(dtype))
    parts_k.append(jnp.full((g,), _SAMPLE))
    parts_a.append(jnp.arange(g, dtype=jnp.int32))
    ev_t = jnp.concatenate(parts_t)
    ev_k = jnp.concatenate(parts_k).astype(jnp.int32)
    ev_a = jnp.concatenate(parts_a).astype(jnp.int32)
    # Stable sort: at equal times deliveries, then spikes, then samples (right-continuous values).
    order = jnp.argsort(ev_t, stable=True)

    # carry: (time, u, i, refractory end); output: (u, i).
    def step(
        carry: tuple[Array, Array, Array, Array], idx: Array
    ) -> tuple[tuple[Array, Array, Array, Array], tuple[Array, Array]]:
        t, u, i, ref_end = carry
        t1, kind, a = ev_t[idx], ev_k[idx], ev_a[idx]
        u, i = evolve(u, i, ref_end, t, t1, nrn)
        row = jnp.where(kind == _DELIVERY, inc.matrix[jnp.minimum(a, inc.matrix.shape[0] - 1)], 0.0)
        u, i = nrn.deliver(u, i, row, t1 >= ref_end)
        fire = kind == _SPIKE
        j = jnp.minimum(a, n - 1)
        u = u.at[j].set(jnp.where(fire, nrn.at("u_reset", j), u[j]))
        ref_end = ref_end.at[j].set(jnp.where(fire, t1 + nrn.at("t_refrac", j), ref_end[j]))
        return (t1, u, i, ref_end), (u, i)

    zeros = jnp.zeros((n,), dtype)
    u0, i0 = nrn.initial_state(n)
    _, (us, is_) = lax.scan(step, (jnp.zeros((), dtype), u0, i0, zeros), order)
    position = jnp.argsort(order)[ev_t.shape[0] - g :]
    # Back from the biased frame (``_dynamics``): v = u + v_leak + bias, I = I' + bias (= I' - i_init).
    return us[position] + nrn.v_leak, is_[position] - nrn.i_init
