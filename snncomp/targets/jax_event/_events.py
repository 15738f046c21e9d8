"""Spike buffers, lowered projections, and the sorted delivery list of a group of neurons.

Layout (per sample; the runtime ``vmap``s over the batch):

* A population's spikes are a :class:`SpikeBuffer` of fixed capacity ``S``:
  ``times`` sorted ascending and padded with ``+inf``, ``neurons`` (local index,
  ``-1`` for padding), and ``current``, the synaptic current ``I`` of the
  spiking neuron at the spike (``u = theta`` there, so ``du/dt = (I - theta) / tau_mem``
  is known too: what an adjoint needs at each spike).
* Input populations are buffers of the user's spikes (any order; padding is
  ``neurons = -1``).
* A projection delivers the spike of source neuron ``i`` at time ``t`` to its
  targets at ``t + delay`` as the weight row ``W[i]``. :func:`incoming` merges
  every incoming projection of a group of neurons into one time-sorted list of
  row indices into a stacked matrix (one block of rows per projection, plus a
  final zero row for padding).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._sort import sort_by_time

__all__ = ["EdgeSpec", "Incoming", "SpikeBuffer", "effective_weight", "incoming"]


class SpikeBuffer(eqx.Module):
    """A population's spikes in one sample: sorted, padded with ``times=+inf``, ``neurons=-1``."""

    times: Float[Array, " S"]
    neurons: Int[Array, " S"]
    current: Float[Array, " S"]
    overflow: Bool[Array, ""]
    sorted: bool = eqx.field(static=True, default=True)
    """False for user inputs that were not sorted on the host (times are then in any order)."""


class EdgeSpec(eqx.Module):
    """A lowered projection. Its weight and delay are run-time parameters (``params[...][key]``)."""

    key: str = eqx.field(static=True)
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)
    source_size: int = eqx.field(static=True)
    target_size: int = eqx.field(static=True)
    mask: Bool[Array, "src tgt"] | None


def effective_weight(edge: EdgeSpec, params: dict) -> Array:
    """The edge's weight with masked-out synapses at zero (so their gradient is zero too)."""
    w = params["weight"][edge.key]
    return w if edge.mask is None else jnp.where(edge.mask, w, 0.0)


class Incoming(eqx.Module):
    """Deliveries into a group of neurons, sorted by time: ``rows`` index ``matrix`` (zero row = none)."""

    times: Float[Array, " E"]
    rows: Int[Array, " E"]
    matrix: Float[Array, "R n"]


def incoming(
    edges: tuple[EdgeSpec, ...],
    offsets: dict[str, int],
    n_total: int,
    buffers: dict[str, SpikeBuffer],
    params: dict,
    t_max: Array,
    dtype: jnp.dtype,
    sort: bool = True,
) -> Incoming:
    """Merge the deliveries of ``edges`` into the neurons ``[offsets[target], +target_size)``.

    Deliveries at or after ``t_max`` are dropped (time ``+inf``, zero row): they
    cannot influence anything inside the window. ``sort=False`` leaves them in the order of the
    edges and buffers, for a consumer that sorts them itself (stably: equal times keep that order).
    """
    blocks: list[Array] = []
    times: list[Array] = []
    rows: list[Array] = []
    base = 0
    for e in edges:
        buf = buffers[e.source]
        w = effective_weight(e, params).astype(dtype)
        off = offsets[e.target]
        if off == 0 and e.target_size == n_total:
            blocks.append(w)
        else:
            blocks.append(jnp.zeros((e.source_size, n_total), dtype).at[:, off : off + e.target_size].set(w))
        t = buf.times + params["delay"][e.key].astype(dtype)
        ok = (buf.neurons >= 0) & (t < t_max)
        times.append(jnp.where(ok, t, jnp.inf))
        rows.append(jnp.where(ok, buf.neurons + base, -1))
        base += e.source_size
    blocks.append(jnp.zeros((1, n_total), dtype))
    matrix = jnp.concatenate(blocks, axis=0)
    if not edges:
        return Incoming(times=jnp.zeros((0,), dtype), rows=jnp.zeros((0,), jnp.int32), matrix=matrix)
    all_t = jnp.concatenate(times)
    all_r = jnp.concatenate(rows)
    all_r = jnp.where(all_r < 0, base, all_r).astype(jnp.int32)
    if not sort or (len(edges) == 1 and buffers[edges[0].source].sorted):
        # One projection from a sorted buffer: a constant delay keeps it sorted (dropped entries are +inf at the end).
        return Incoming(times=all_t, rows=all_r, matrix=matrix)
    all_t, (all_r,), _ = sort_by_time(all_t, all_r)
    return Incoming(times=all_t, rows=all_r, matrix=matrix)
