"""A stable sort by time for short rows, as a bitonic sorting network.

XLA's generic sort calls a comparator per comparison; on CPU that costs
~10 ns each, which dominates a layer of 100 neurons. A bitonic network
(``p (p + 1) / 2`` compare-exchange stages for ``2^p`` elements) is a fixed
sequence of vectorized min/max steps instead. Ties are broken by the original
index, so the result equals a stable argsort.

The network runs along the *leading* axis with the batch as the contiguous
trailing axis, where each compare-exchange is a plain vectorized select over
whole rows; laid out the other way (what ``vmap`` would produce) the same
network is about twice as slow. :func:`sort_permutation` therefore has its own
batching rule (``jax.custom_batching.custom_vmap``) that moves the batch axis
last. Only the integer permutation goes through it; values are gathered with it
afterwards, so gradients flow as through any gather.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import custom_batching, lax
from jaxtyping import Array

__all__ = ["sort_by_time", "sort_permutation"]


def _exchange(a: tuple[Array, ...], b: tuple[Array, ...]) -> tuple[tuple[Array, ...], tuple[Array, ...]]:
    # a[0], b[0]: keys; a[1], b[1]: original index (the tie-break, so the order is total).
    swap = (b[0] < a[0]) | ((b[0] == a[0]) & (b[1] < a[1]))
    lo = tuple(jnp.where(swap, y, x) for x, y in zip(a, b))
    hi = tuple(jnp.where(swap, x, y) for x, y in zip(a, b))
    return lo, hi


def _network(keys: Array) -> Array:
    """Stable argsort of ``keys`` ``[n, B]`` along axis 0 (a bitonic network); returns ``[n, B]`` int32."""
    n, batch = keys.shape
    if n <= 1:
        return jnp.zeros((n, batch), jnp.int32)
    p = (n - 1).bit_length()
    m = 1 << p
    idx = jnp.broadcast_to(jnp.arange(m, dtype=jnp.int32)[:, None], (m, batch))
    if m != n:
        keys = jnp.pad(keys, [(0, m - n), (0, 0)], constant_values=jnp.inf)
    arrs: tuple[Array, ...] = (keys, idx)
    for k in range(1, p + 1):
        half = 1 << (k - 1)
        # Merge step: compare element i of each block with its mirror image (no direction flags needed).
        r = [x.reshape(m // (2 * half), 2, half, batch) for x in arrs]
        lo, hi = _exchange(tuple(x[:, 0] for x in r), tuple(x[:, 1, ::-1] for x in r))
        arrs = tuple(jnp.stack([a, b[:, ::-1]], axis=1).reshape(m, batch) for a, b in zip(lo, hi))
        d = half >> 1
        while d >= 1:
            r = [x.reshape(m // (2 * d), 2, d, batch) for x in arrs]
            lo, hi = _exchange(tuple(x[:, 0] for x in r), tuple(x[:, 1] for x in r))
            arrs = tuple(jnp.stack([a, b], axis=1).reshape(m, batch) for a, b in zip(lo, hi))
            d >>= 1
    return arrs[1][:n]


def _argsort_last(keys: Array) -> Array:
    """Stable argsort along the last axis of ``keys`` (any leading shape) via :func:`_network`."""
    n = keys.shape[-1]
    lead = keys.shape[:-1]
    flat = jnp.moveaxis(keys, -1, 0).reshape(n, -1)
    perm = _network(flat).reshape((n, *lead))
    return jnp.moveaxis(perm, 0, -1)


@custom_batching.custom_vmap
def sort_permutation(keys: Array) -> Array:
    """The stable ascending order of ``keys`` along its last axis (int32), batched efficiently.

    NaN keys are not allowed (spike times are finite or ``+inf``).
    """
    return _argsort_last(keys)


@sort_permutation.def_vmap
def _sort_permutation_vmap(axis_size: int, in_batched: list, keys: Array) -> tuple[Array, bool]:
    del axis_size
    (batched,) = in_batched
    # Batched or not, the batch axis (leading) stays a leading axis of ``keys``; _argsort_last
    # flattens all leading axes into the contiguous trailing axis of the network.
    return _argsort_last(keys), batched


def sort_by_time(keys: Array, *payloads: Array) -> tuple[Array, tuple[Array, ...], Array]:
    """Sort the last axis of ``keys`` ascending (stably); returns ``(keys, payloads, permutation)``."""
    perm = sort_permutation(lax.stop_gradient(keys))
    take = lambda x: jnp.take_along_axis(x, perm, axis=-1)  # noqa: E731
    return take(keys), tuple(take(x) for x in payloads), perm
