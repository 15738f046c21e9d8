"""The layer-parallel engine's per-layer kernels: input releases, bus stages and layer sweeps.

:func:`input_releases` forms the input events as the general engine does; :func:`bus_stage` simulates
the PADI buses of one stage (step 1 of :mod:`._layered`); :func:`layer_sweep` computes one depth's
neurons: the closed-form evolution over every interval between deliveries, the candidate intervals from
the upper bound, and the exact check of the candidates (steps 2 and 3, :mod:`._layered_crossing`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._engine import _EPS, EngineOptions
from ._layered_crossing import _STEPS, _crossing, _phi
from ._layered_plan import LayeredTables, LevelTables, StageTables
from ._neurons import NeuronArrays

_PAIRWISE_MAX = 512  # orderings of up to this many entries by pairwise comparison, longer ones by a sort
_ALL_AT_ONCE = 256  # layers of at most this many neurons x samples check their candidates in one loop


def _order(t: Array) -> Array:
    """``[E, B]`` -> the permutation sorting each column by value, ties (and ``+inf``) in position order."""
    E = t.shape[0]
    if E > _PAIRWISE_MAX:
        return jnp.argsort(t, axis=0, stable=True).astype(jnp.int32)
    i = jnp.arange(E, dtype=jnp.int32)[:, None, None]
    j = jnp.arange(E, dtype=jnp.int32)[None, :, None]
    before = (t[None, :, :] < t[:, None, :]) | ((t[None, :, :] == t[:, None, :]) & (j < i))  # [i, j, B]: j first
    rank = jnp.sum(before, axis=1, dtype=jnp.int32)  # [E, B]
    return jnp.sum(jnp.where(rank[None, :, :] == i, j, 0), axis=1, dtype=jnp.int32)


def _queue_positions(t: Array, bus: Array, live: Array) -> Array:
    """``[E, B]``: each live event's place in its bus's queue, the number of live events on the same bus
    before it (earlier time, or the same time and a smaller index); dead events get any place."""
    E = t.shape[0]
    if E <= _PAIRWISE_MAX:
        i = jnp.arange(E, dtype=jnp.int32)[:, None, None]
        j = jnp.arange(E, dtype=jnp.int32)[None, :, None]
        before = (t[None, :, :] < t[:, None, :]) | ((t[None, :, :] == t[:, None, :]) & (j < i))  # [i, j, B]
        same = bus[None, :, :] == bus[:, None, :]
        return jnp.sum(before & same & live[None, :, :], axis=1, dtype=jnp.int32)
    # Long lists (a partition reading many stand-in inputs: E ~ 1,000 makes the pairwise form E^2 x B):
    # sort by (bus, time, index); a live event's place is its rank minus where its bus's run starts.
    nb = jnp.max(jnp.where(live, bus, 0)) + 1
    key = jnp.where(live, bus, nb)  # dead events after every bus
    idx = jnp.broadcast_to(jnp.arange(E, dtype=jnp.int32)[:, None], t.shape)
    order = jnp.lexsort((idx, t, key), axis=0)  # primary: key
    sk = jnp.take_along_axis(key, order, axis=0)
    rank = jnp.arange(E, dtype=jnp.int32)[:, None]
    first = jnp.where(jnp.concatenate([jnp.ones_like(sk[:1], bool), sk[1:] != sk[:-1]]), rank, 0)
    start = lax.cummax(first, axis=0)
    cols = jnp.broadcast_to(jnp.arange(t.shape[1])[None, :], t.shape)
    return jnp.zeros(t.shape, jnp.int32).at[order, cols].set(rank - start)


def _take(x: Array, perm: Array) -> Array:
    """``x[perm[i, b], b, ...]``."""
    idx = perm.reshape(perm.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=0)


def input_releases(
    lt: LayeredTables, ev_time: Array, ev_channel: Array, t_max: Array, tick_model: Array, dtype: Any
) -> tuple[Array, Array]:
    """Input releases ``(times, external sources)``, each ``[Ein, B]``, as the general engine forms them:
    one event per (input spike, label), on the tick grid."""
    B = ev_time.shape[0]
    n_ch = lt.in_sources.shape[0]
    ev_t, ev_c = ev_time.T, ev_channel.T  # [Q, B]: events major, as everything below
    ok = (ev_c >= 0) & (ev_c < n_ch) & (ev_t < t_max) & jnp.isfinite(ev_t) & (ev_t >= 0)
    src = jnp.where(ok[..., None], lt.in_sources[jnp.clip(ev_c, 0, n_ch - 1)], -1)  # [Q, B, Lw]
    src = jnp.moveaxis(src, 2, 1)  # [Q, Lw, B]: the general engine's (event, label) order
    tick = jnp.floor(ev_t / tick_model + 0.5)
    in_t = jnp.where(src >= 0, tick[:, None, :], jnp.inf).reshape(-1, B).astype(dtype)  # [Ein, B]
    in_src = src.reshape(-1, B)
    return in_t, in_src


def bus_stage(
    st: StageTables,
    lt: LayeredTables,
    crossing_t: Array,
    in_t: Array,
    in_src: Array,
    t_end: Array,
    n_pad: int,
    opts: EngineOptions,
) -> tuple[Array, ...]:
    """Simulate this stage's buses: ``(times, source ids, lanes, delivery times, delayed, dropped)`` per lane
    event, each ``[events * lanes, B]`` (events major, as everything below)."""
    dtype = crossing_t.dtype
    B = in_t.shape[1]
    n_in = in_t.shape[0]
    queue = jnp.asarray(opts.bus_queue, dtype)
    times, lanes, ident = [], [], []
    if st.has_neurons:
        times.append(jnp.where(st.nrn_real[:, None], crossing_t[st.nrn], jnp.inf))
        lanes.append(jnp.broadcast_to(st.nrn_lanes[:, :, None], (*st.nrn_lanes.shape, B)))
        ident.append(jnp.broadcast_to(st.nrn[:, None], (st.nrn.shape[0], B)))
    if st.has_inputs:
        ln = jnp.where(in_src[..., None] >= 0, st.in_lanes[jnp.maximum(in_src, 0)], -1)  # [Ein, B, K]
        times.append(jnp.where(jnp.any(ln >= 0, axis=-1), in_t, jnp.inf))
        lanes.append(jnp.moveaxis(ln, 2, 1))
        ident.append(jnp.broadcast_to(n_pad + jnp.arange(n_in, dtype=jnp.int32)[:, None], (n_in, B)))
    # Lane events in the general engine's processing order of equal times: spikes by neuron, then inputs.
    K = lanes[0].shape[1]
    t = jnp.concatenate(times, axis=0)
    t = jnp.where(t <= t_end, t, jnp.inf)  # never processed after the end of the run
    t = jnp.repeat(t, K, axis=0)  # [E * K, B]
    ls = jnp.concatenate(lanes, axis=0).reshape(-1, B)
    ids = jnp.repeat(jnp.concatenate(ident, axis=0), K, axis=0)
    nb = lt.n_buses
    bus = jnp.where(ls >= 0, lt.lane_bus[jnp.maximum(ls, 0)], nb)
    live = (bus < nb) & jnp.isfinite(t)
    if not opts.rate_limit:
        zero = jnp.zeros_like(live)
        return t, ids, ls, jnp.where(live, t, jnp.inf), zero, zero
    # Each bus is a FIFO (a source has at most one lane per bus): the place of a lane event in its
    # bus's queue is the number of live events before it there.
    n_items = t.shape[0]
    pos = _queue_positions(t, bus, live)
    P = min(st.queue_length(n_in), n_items)
    cols = jnp.arange(B)[None, :]
    slot_bus = jnp.where(live, bus, nb)  # out of range: dropped
    queue_t = jnp.full((P, nb, B), jnp.inf, dtype).at[pos, slot_bus, cols].set(t, mode="drop")

    def step(busy: Array, t: Array) -> tuple[Array, tuple[Array, Array, Array]]:
        on = jnp.isfinite(t)
        wait = jnp.maximum(busy - t, 0.0)  # the general engine's arithmetic
        now = on & (wait <= _EPS)
        later = on & (wait > _EPS) & (wait <= queue)
        dropped = on & (wait > queue)
        busy = jnp.where(now | later, jnp.maximum(busy, t + wait + 1.0), busy)
        return busy, (jnp.where(now, t, jnp.where(later, t + wait, jnp.inf)), later, dropped)

    _, (d, later, dropped) = lax.scan(step, jnp.full((nb, B), -jnp.inf, dtype), queue_t)
    p_idx, b_idx = jnp.minimum(pos, P - 1), jnp.minimum(slot_bus, nb - 1)

    def back(x: Array) -> Array:  # [P, nb, B] -> per lane event [E * K, B]
        return x[p_idx, b_idx, cols]

    return t, ids, ls, jnp.where(live, back(d), jnp.inf), live & back(later), live & back(dropped)


def level_rows(
    lt: LayeredTables, lv: LevelTables, n_columns: int, segments: tuple[tuple[int, int, int, int], ...] | None
) -> dict[int, np.ndarray | None]:
    """Per bus stage feeding ``lv``: the rows of its lane events that can reach the layer (``None``: all).

    ``segments`` ``(first column, end column, first channel, end channel)`` say which input channels the
    event columns ``0 .. n_columns-1`` hold (the executable concatenates one buffer per input population);
    an input event whose column holds no channel reaching the layer (e.g. a stand-in feeding only a later
    layer) is left out: its deliveries carry no weight into the layer. Without segments: every row.
    """
    out: dict[int, np.ndarray | None] = {s: None for s in lv.stages}
    if segments is None:
        return out
    cols = np.zeros(n_columns, bool)
    for c0, c1, h0, h1 in segments:
        if any(lo < h1 and h0 < hi for lo, hi in lv.in_channels):
            cols[c0:c1] = True
    if cols.all():
        return out
    Lw = lt.in_sources.shape[1]
    for s in lv.stages:
        st = lt.stages[s]
        K = st.nrn_lanes.shape[1] if st.has_neurons else st.in_lanes.shape[1]
        ns = st.nrn.shape[0] if st.has_neurons else 0
        items = [np.arange(ns)]
        if st.has_inputs:
            items.append(ns + np.flatnonzero(np.repeat(cols, Lw)))
        item = np.concatenate(items)
        out[s] = (item[:, None] * K + np.arange(K)[None, :]).reshape(-1)
    return out


def layer_sweep(
    lv: LevelTables,
    nz: NeuronArrays,
    theta: Array,
    lane_w: Array,
    stage_out: dict[int, tuple[Array, ...]],
    t_end: Array,
    rows: dict[int, np.ndarray | None] | None = None,
) -> tuple[Array, Array]:
    """Crossing times ``[B, NL]`` of one depth's neurons and the smallest grazing value per sample."""
    dtype = lane_w.dtype
    B = theta.shape[0]
    eps = jnp.finfo(dtype).eps
    steps = _STEPS[np.dtype(dtype).itemsize]
    nl = lv.neurons
    NL = nl.shape[0]
    a, be, bi = nz.a[nl], nz.be[nl], nz.bi[nl]
    th = jnp.where(lv.real[None, :], theta[:, nl], jnp.inf)  # [B, NL]
    scale = jnp.abs(nz.theta[nl])
    if lv.stages:
        rows = rows or {}

        def pick(x: Array, s: int) -> Array:  # the rows of stage s that can reach this layer (level_rows)
            r = rows.get(s)
            return x if r is None else x[r]

        d = jnp.concatenate([pick(stage_out[s][3], s) for s in lv.stages], axis=0)  # [M, B]
        ls = jnp.concatenate([pick(stage_out[s][2], s) for s in lv.stages], axis=0)
        d = jnp.where(d < t_end, d, jnp.inf)  # a delivery at or after the end changes nothing before it
        perm = _order(d)
        d, ls = _take(d, perm), _take(ls, perm)
        real = jnp.isfinite(d) & (ls >= 0)
        w = lane_w[:, nl, :][jnp.maximum(ls, 0)] * real[..., None, None].astype(dtype)  # [M, B, NL, 2]
        kick_e = nz.gain_exc[nl] * w[..., 0]  # [M, B, NL]
        kick_i = nz.gain_inh[nl] * w[..., 1]
        t = jnp.where(real, d, t_end)
    else:
        kick_e = kick_i = jnp.zeros((0, B, NL), dtype)
        t = jnp.zeros((0, B), dtype)
    M = t.shape[0]
    pad = jnp.zeros((1, B, NL), dtype)
    kick_e = jnp.concatenate([kick_e, pad])  # [M + 1, B, NL]: the delivery ending interval k
    kick_i = jnp.concatenate([kick_i, pad])
    starts = jnp.concatenate([jnp.zeros((1, B), dtype), t])  # interval k: [starts_k, starts_k + h_k]
    ends = jnp.concatenate([t, jnp.broadcast_to(t_end, (1, B))])
    h = jnp.maximum(ends - starts, 0.0)[:, :, None]  # [M + 1, B, 1]
    # Per interval (layout [M + 1, B, NL]): the general engine's closed-form evolution, then a scan of FMAs.
    ee, ei, em = jnp.exp(-be * h), jnp.exp(-bi * h), jnp.exp(-a * h)
    k_e, k_i = ee * _phi(a - be, h), ei * _phi(a - bi, h)  # the kernels' integrals K_e(h), K_i(h)
    pe, pi = a * k_e, a * k_i

    def step(c: tuple[Array, Array, Array], x: tuple[Array, ...]) -> tuple[tuple, tuple]:
        u, ie, ii = c
        em_, pe_, pi_, ee_, ei_, ke_, ki_ = x
        return (em_ * u + pe_ * ie + pi_ * ii, ee_ * ie + ke_, ei_ * ii - ki_), (u, ie, ii)

    z = jnp.zeros((B, NL), dtype)
    (u_end, _, _), (u0, ie0, ii0) = lax.scan(step, (z, z, z), (em, pe, pi, ee, ei, kick_e, kick_i))
    u1 = jnp.concatenate([u0[1:], u_end[None]])  # u at the end of each interval (u is continuous)
    ie1, ii1 = ie0 * ee, ii0 * ei
    # Upper bound of u on each interval: inhibition as r times an input decaying like the excitation
    # (K_i(s) / K_e(s) is monotone, so r = min(1, K_i(h) / K_e(h)) bounds it from below).
    r = jnp.where(k_e > 0, jnp.minimum(1.0, k_i / jnp.where(k_e > 0, k_e, 1.0)), 1.0)
    J = ie0 + r * ii0
    uh = u0 * em + pe * J
    al = a - be
    Jd = be * jnp.where(J > 0, J, 1.0)
    x_ = al * (J - u0) / Jd
    s_star = jnp.where(al == 0, (J - u0) / Jd, jnp.log1p(x_) / jnp.where(al == 0, 1.0, al))
    interior = (J > 0) & (u0 < J) & (1.0 + x_ > 0) & (s_star < h)
    peak = jnp.where(interior, J * jnp.exp(-be * jnp.where(interior, s_star, 0.0)), -jnp.inf)
    bound = jnp.maximum(jnp.maximum(u0, uh), peak)
    tol = 32 * eps * (jnp.abs(th) + jnp.abs(u0) + ie0 - ii0)
    cand = (u1 >= th) | (bound >= th - tol)
    # Grazing: interior maxima (from the bound) and maxima at an inhibitory delivery.
    ie_next = jnp.concatenate([ie0[1:], ie1[-1:]])
    ii_next = jnp.concatenate([ii0[1:], ii1[-1:]])
    kink = (ie1 + ii1 - u1 > 0) & (ie_next + ii_next - u1 <= 0) & (u1 < th)
    g_all = jnp.minimum(
        jnp.where(interior & ~cand, (th - peak) / scale, jnp.inf), jnp.where(kink, (th - u1) / scale, jnp.inf)
    )
    # One array: -inf marks a candidate interval, else the interval's grazing value.
    mark = jnp.where(cand, -jnp.inf, g_all)
    guess = jnp.where(interior, s_star, -1.0)  # where the bound peaks: a start for the extremum search
    none = jnp.int32(M + 1)

    k0 = jnp.min(jnp.where(mark == -jnp.inf, jnp.arange(M + 1, dtype=jnp.int32)[:, None, None], none), axis=0)
    # Exact check of every neuron's first candidate (all at once), then of the next candidates of the
    # few neurons whose candidate did not cross, a fixed number at a time, until none is open.
    n = B * NL
    flat = lambda x: x.reshape(x.shape[0], n)  # noqa: E731  [M + 1, B, NL] -> [M + 1, n]
    u0f, ie0f, ii0f, u1f, guessf, markf = (flat(x) for x in (u0, ie0, ii0, u1, guess, mark))
    hf = jnp.broadcast_to(h, mark.shape).reshape(M + 1, n)
    thf, scalef = th.reshape(n), jnp.broadcast_to(scale, (B, NL)).reshape(n)
    af, bef, bif = (jnp.broadcast_to(x, (B, NL)).reshape(n) for x in (a, be, bi))
    ks = jnp.arange(M + 1, dtype=jnp.int32)[:, None]

    def check(k: Array, i: Array) -> tuple[Array, Array, Array, Array]:
        """Candidate ``k`` of flat neuron ``i``: crosses, when, grazing value, and the next candidate."""
        kk = jnp.minimum(k, M)
        pick = lambda x: x[kk, i]  # noqa: E731
        crosses, s_, umax = _crossing(
            pick(u0f),
            pick(ie0f),
            pick(ii0f),
            pick(u1f),
            pick(hf),
            pick(guessf),
            thf[i],
            af[i],
            bef[i],
            bif[i],
            steps,
        )
        g_new = jnp.where(jnp.isfinite(umax), jnp.abs(umax - thf[i]) / scalef[i], jnp.inf)
        return crosses, s_, g_new, kk

    def after(kk: Array, i: Array) -> Array:
        return jnp.min(jnp.where((ks > kk[None]) & (markf[:, i] == -jnp.inf), ks, none), axis=0)

    k0f = k0.reshape(n)
    everyone = jnp.arange(n, dtype=jnp.int32)
    if n > _ALL_AT_ONCE:
        # Every first candidate at once, then the few rejected ones (the bound allowed a crossing the
        # exact trajectory does not make) move on to their next candidate, 64 at a time.
        crosses, c_s, g_ex, kk = check(k0f, everyone)
        open0 = k0f <= M
        state: tuple[Array, ...] = (
            kk,
            open0 & ~crosses,
            jnp.ones((n,), bool),
            jnp.where(open0 & crosses, kk, none),
        )
        state = (*state, c_s, jnp.where(open0, g_ex, jnp.inf))
        R = 64
    else:  # a small layer: one loop for the first and the later candidates (less to compile)
        state = (k0f, k0f <= M, jnp.zeros((n,), bool), jnp.full((n,), none), jnp.zeros((n,), dtype))
        state = (*state, jnp.full((n,), jnp.inf, dtype))
        R = n

    def resolve(c: tuple[Array, ...]) -> tuple[Array, ...]:
        k, open_, again, c_k, c_s, g_ex = c
        pos = jnp.cumsum(open_, dtype=jnp.int32) - 1
        take = open_ & (pos < R)
        ids = jnp.full((R,), n, jnp.int32).at[jnp.where(take, pos, R)].set(everyone, mode="drop")
        i = jnp.minimum(ids, n - 1)
        k_i = jnp.where(again[i], after(k[i], i), k[i])
        crosses, s_, g_new, kk = check(k_i, i)
        at = jnp.where((ids < n) & (k_i <= M), ids, n)  # padding and neurons without a next candidate: dropped
        c_k = c_k.at[at].set(jnp.where(crosses, kk, none), mode="drop")
        c_s = c_s.at[at].set(s_, mode="drop")
        g_ex = g_ex.at[at].min(g_new, mode="drop")
        k = k.at[at].set(k_i, mode="drop")
        picked = jnp.where(ids < n, ids, n)
        open_ = open_.at[picked].set((k_i <= M) & ~crosses, mode="drop")
        again = again.at[picked].set(True, mode="drop")
        return k, open_, again, c_k, c_s, g_ex

    _, _, _, c_k, c_s, g_ex = lax.while_loop(lambda c: jnp.any(c[1]), resolve, state)
    c_k, c_s, g_ex = c_k.reshape(B, NL), c_s.reshape(B, NL), g_ex.reshape(B, NL)
    fired = c_k <= M
    t_start = starts[jnp.minimum(c_k, M), jnp.arange(B)[:, None]]
    c = jnp.where(fired, jnp.minimum(t_start + c_s, t_end), jnp.inf)
    # Grazing values of the intervals before the crossing (all, without one), and of the candidates checked.
    before = jnp.arange(M + 1, dtype=jnp.int32)[:, None, None] < c_k[None]
    g = jnp.minimum(jnp.min(jnp.where(before & (mark > -jnp.inf), mark, jnp.inf), axis=0), g_ex)
    return c, jnp.min(jnp.where(lv.real[None, :], g, jnp.inf), axis=1)
