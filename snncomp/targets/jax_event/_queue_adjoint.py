"""EventProp backward of an event-queue stage: one sweep over every event in reverse time order.

``docs/eventprop.md`` derives it; :func:`queue_backward` is the stage's ``eventprop`` method.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._dynamics import free_coefficients
from ._eventprop_common import bias_integral, guarded_slope, zero_grads
from ._events import SpikeBuffer, effective_weight
from ._sort import sort_permutation

__all__ = ["queue_backward"]

_INTERNAL, _EXTERNAL, _RELEASE, _SPIKE = 0, 1, 2, 3
# Order within one instant in the backward sweep (reverse of the forward's), used with instantaneous
# synapses: zero-delay deliveries (after their spike), spikes, delayed internal deliveries, external
# deliveries, releases (a refractory period ends before anything else of its instant happens).
_RANK = {_INTERNAL: 0, _SPIKE: 1, _EXTERNAL: 3, _RELEASE: 4}
_RANK_DELAYED = 2


def queue_backward(
    stage: Any,  # a EventQueueStage (not imported: it imports this module)
    sub: dict,
    buffers: dict[str, SpikeBuffer],
    out: dict[str, SpikeBuffer],
    ct: dict[str, Array],
    t_max: Array,
) -> tuple[dict, dict]:
    nrn = stage.nrn
    n = stage.n_total
    dtype = nrn.tau_mem.dtype
    ups = stage.upstream()
    d_sub, d_times = zero_grads(sub, {u: buffers[u].times for u in ups})
    spiking = [p for p in stage.populations if p.name in out]
    spike_off: dict[str, int] = {}
    total = 0
    for p in spiking:
        spike_off[p.name] = total
        total += out[p.name].times.shape[0]
    n_spikes = total
    edges = stage.external + stage.internal
    edge_id = {e.key: k for k, e in enumerate(edges)}

    # Stacked weight rows: one block per edge, columns at the target's offset; final zero row.
    blocks, masks, base = [], [], {}
    r = 0
    for e in edges:
        w = effective_weight(e, sub).astype(dtype)
        off = stage.offsets[e.target]
        blocks.append(jnp.zeros((e.source_size, n), dtype).at[:, off : off + e.target_size].set(w))
        m = np.zeros((e.source_size, n), bool)
        m[:, off : off + e.target_size] = True
        masks.append(m)
        base[e.key] = r
        r += e.source_size
    blocks.append(jnp.zeros((1, n), dtype))
    masks.append(np.zeros((1, n), bool))
    w_stack = jnp.concatenate(blocks)
    row_mask = jnp.asarray(np.concatenate(masks))
    zero_row = r

    internal = [e for e in stage.internal if e.source in out]
    ext_off: dict[str, int] = {}
    tg_size = n_spikes
    for e in stage.external:
        ext_off[e.key] = tg_size
        tg_size += buffers[e.source].times.shape[0]
    tg0 = jnp.zeros((tg_size,), dtype)
    for p in spiking:
        k0 = spike_off[p.name]
        tg0 = tg0.at[k0 : k0 + ct[p.name].shape[0]].set(ct[p.name].astype(dtype))
    t_ref_all = jnp.broadcast_to(nrn.t_refrac, (n,))

    def event_list(merge: bool) -> dict[str, Array]:
        """Every event in reverse time order: (time, kind, row, neuron, tg index, edge id, current).

        TG holds dL/dt per spike of this stage (seeded with the output cotangents) followed by dL/ds per
        external delivery. With ``merge`` (every internal delay is 0) a spike carries its own deliveries
        (in ``row`` and ``irow``, one per internal projection) instead of one event each: half the steps.
        """
        # Blocks are kept per kind and concatenated in kind order: a stable sort by reversed time then
        # orders equal times by kind, as the forward's order requires (see below).
        by_kind: dict[int, list[dict[str, Array]]] = {k: [] for k in (_INTERNAL, _EXTERNAL, _RELEASE, _SPIKE)}
        m = len(internal) if merge else 0
        extra = max(m - 1, 0)

        def add(
            t: Array,
            kind: int,
            row: Array,
            neuron: Array,
            tg: Array,
            edge: int,
            cur: Array,
            irow: Array | None = None,
            rank: Array | None = None,
        ) -> None:
            size = t.shape[0]
            by_kind[kind].append(
                {
                    "t": t,
                    "kind": jnp.full((size,), kind, jnp.int32),
                    "row": row.astype(jnp.int32),
                    "nrn": neuron.astype(jnp.int32),
                    "tg": tg.astype(jnp.int32),
                    "edge": jnp.full((size,), edge, jnp.int32),
                    "cur": cur.astype(dtype),
                    "irow": jnp.full((size, extra), zero_row, jnp.int32) if irow is None else irow.astype(jnp.int32),
                    "rank": jnp.broadcast_to(
                        jnp.asarray(rank if rank is not None else _RANK[kind], jnp.int32), (size,)
                    ),
                }
            )

        for e in stage.external:
            src = buffers[e.source]
            s = src.times.astype(dtype) + sub["delay"][e.key].astype(dtype)
            ok = (src.neurons >= 0) & (s < t_max)
            size = s.shape[0]
            add(
                jnp.where(ok, s, -jnp.inf),
                _EXTERNAL,
                jnp.where(ok, base[e.key] + src.neurons, zero_row),
                jnp.zeros((size,)),
                ext_off[e.key] + jnp.arange(size),
                edge_id[e.key],
                jnp.zeros((size,)),
            )
        for e in [] if merge else internal:
            src = out[e.source]
            s = src.times + sub["delay"][e.key].astype(dtype)
            ok = (src.neurons >= 0) & (s < t_max)
            size = s.shape[0]
            add(
                jnp.where(ok, s, -jnp.inf),
                _INTERNAL,
                jnp.where(ok, base[e.key] + src.neurons, zero_row),
                jnp.zeros((size,)),
                spike_off[e.source] + jnp.arange(size),
                edge_id[e.key],
                jnp.zeros((size,)),
                # A zero-delay delivery follows its spike in the forward order; a delayed one precedes
                # the spikes of its instant.
                rank=jnp.where(sub["delay"][e.key] == 0, _RANK[_INTERNAL], _RANK_DELAYED),
            )
        for p in spiking:
            buf = out[p.name]
            ok = buf.neurons >= 0
            size = buf.times.shape[0]
            glob = jnp.where(ok, stage.offsets[p.name] + buf.neurons, 0)
            tg = spike_off[p.name] + jnp.arange(size)
            # A merged spike's first delivery takes the spike's own (otherwise unused) row slot.
            rows = [jnp.where(ok & (e.source == p.name), base[e.key] + buf.neurons, zero_row) for e in internal[:m]]
            row = rows[0] if rows else jnp.full((size,), zero_row)
            edge = edge_id[internal[0].key] if rows else 0
            irow = jnp.stack(rows[1:], axis=1) if len(rows) > 1 else None
            add(jnp.where(ok, buf.times, -jnp.inf), _SPIKE, row, glob, tg, edge, buf.current, irow)
            if nrn.has_refrac:
                rel = buf.times + t_ref_all[glob]
                rel_ok = ok & (t_ref_all[glob] > 0) & (rel < t_max)
                add(
                    jnp.where(rel_ok, rel, -jnp.inf),
                    _RELEASE,
                    jnp.full((size,), zero_row),
                    glob,
                    tg,
                    0,
                    jnp.zeros((size,)),
                )
        blocks_in_order = [b for k in sorted(by_kind) for b in by_kind[k]]
        cat = {k: jnp.concatenate([b[k] for b in blocks_in_order]) for k in blocks_in_order[0]}
        # Reverse time; at equal times undo the forward order (deliveries caused by a spike come after
        # it): the stable sort keeps the kind order of the concatenation among equal times.
        keys = lax.stop_gradient(-cat["t"])
        if nrn.has_jump:
            # Instantaneous synapses make equal times common (a spike at its trigger's arrival, inputs on
            # a grid): undo the forward order exactly, by rank within an instant (two stable sorts).
            by_rank = jnp.argsort(cat["rank"], stable=True)
            order = by_rank[jnp.argsort(keys[by_rank], stable=True)]
        elif keys.shape[-1] <= 1024:  # the bitonic network wins for short lists, XLA's sort for long ones
            order = sort_permutation(keys)
        else:
            order = jnp.argsort(keys, axis=-1, stable=True)
        return {k: v[order] for k, v in cat.items() if k != "rank"}

    # Which neurons are clamped at t_max (a spike whose refractory period outlasts the window).
    clamped0 = jnp.zeros((n,), bool)
    if nrn.has_refrac:
        for p in spiking:
            buf = out[p.name]
            ok = buf.neurons >= 0
            glob = jnp.where(ok, stage.offsets[p.name] + buf.neurons, n)
            late = ok & (buf.times + t_ref_all[jnp.minimum(glob, n - 1)] >= t_max)
            clamped0 = clamped0 | jnp.zeros((n + 1,), bool).at[glob].max(late)[:n]

    tau_m = jnp.broadcast_to(nrn.tau_mem, (n,))
    tau_s = jnp.broadcast_to(nrn.tau_syn, (n,))
    jump_all = jnp.broadcast_to(nrn.jump, (n,))
    drift_all = jnp.broadcast_to(nrn.drift, (n,))
    theta = jnp.broadcast_to(nrn.theta, (n,))
    u_reset = jnp.broadcast_to(nrn.u_reset, (n,))
    zeros = jnp.zeros((n,), dtype)
    iota_n = jnp.arange(n)

    with_bias = "bias" in sub

    def sweep(merge: bool) -> tuple[Array, Array, Array, Array]:
        """The backward scan over ``event_list(merge)``: (dL/dw rows, dL/d delay per edge, TG)."""
        cat = event_list(merge)
        carry0 = dict(
            t=jnp.asarray(t_max, dtype),
            lam_u=zeros,
            lam_i=zeros,
            tg=tg0,
        )
        if nrn.has_jump:  # a spike at its trigger's arrival waits for that delivery (see step)
            carry0.update(trig_on=jnp.zeros((n,), bool), trig_g=zeros, trig_t=zeros)
        if with_bias:
            carry0["db"] = zeros
        # Without a refractory period nothing is ever clamped or released: no bookkeeping for it.
        if nrn.has_refrac:
            carry0.update(clamped=clamped0, pend_on=jnp.zeros((n,), bool), pend_lam=zeros, pend_i=zeros, pend_r=zeros)
        # dL/dw of each delivery is a row of lambda_I. Few events per weight row (single-spike stages):
        # emit the rows as scan outputs and sum them by row once afterwards. Many (multi-spike): the
        # outputs would be [events, n] per sample, so accumulate into a carried [rows, n] matrix instead.
        n_events = int(cat["t"].shape[-1]) * (1 + cat["irow"].shape[-1])
        rows_as_outputs = n_events <= 2 * int(w_stack.shape[0])
        if not rows_as_outputs:
            carry0["dw"] = jnp.zeros_like(w_stack)

        # Per-neuron updates are one-hot selects over the n neurons (a scatter per carried array is slow
        # on CPU under vmap); the per-event gradients (tg) stay scatters: that vector is as long as the
        # event list.
        def step(c: dict, x: dict) -> tuple[dict, tuple[Array, Array]]:
            valid = jnp.isfinite(x["t"])
            t_ev = jnp.where(valid, x["t"], c["t"])
            alpha, beta, gamma = free_coefficients(c["t"] - t_ev, nrn)
            db = None
            if with_bias:
                free_b = ~c["clamped"] if nrn.has_refrac else True
                span = c["t"] - t_ev
                db = c["db"] + bias_integral(c["lam_u"], c["lam_i"], span, nrn, free_b, (alpha, beta, gamma))
            if nrn.has_refrac:
                free = ~c["clamped"]
                lam_u = jnp.where(free, alpha * c["lam_u"], 0.0)
                lam_i = gamma * c["lam_i"] + jnp.where(free, beta * c["lam_u"], 0.0)
            else:
                lam_u = alpha * c["lam_u"]
                lam_i = gamma * c["lam_i"] + beta * c["lam_u"]
            kind = x["kind"]
            is_rel = valid & (kind == _RELEASE)
            is_spk = valid & (kind == _SPIKE)

            # Delivery: dL/dw = lambda_I, dL/ds from the jump of the vector field. A merged spike's own
            # deliveries happen right after it, so they are undone first, from the same adjoint state.
            rows = jnp.concatenate([x["row"][None], x["irow"]])
            # Padding and releases have the zero row; a spike's row is its merged delivery (if any).
            live = jnp.concatenate([valid[None], jnp.broadcast_to(is_spk, x["irow"].shape)])
            w = w_stack[rows]
            field = -(lam_u / tau_m - lam_i / tau_s)
            if nrn.has_refrac:
                field = jnp.where(free, field, lam_i / tau_s)
            lam_w = lam_i
            if nrn.has_jump:
                # A weight that jumps v: dL/dw = lambda_v, and moving the jump shifts the leak's pull by w/tau_m.
                jump_free = jump_all & free if nrn.has_refrac else jump_all
                field = jnp.where(jump_all, jnp.where(jump_free, lam_u / tau_m, 0.0), field)
                lam_w = jnp.where(jump_all, jnp.where(jump_free, lam_u, 0.0), lam_i)
            ds = jnp.where(live, w @ field, 0.0)
            dw_rows = jnp.where(live[:, None], lam_w * row_mask[rows], 0.0)
            if nrn.has_jump:
                # The delivery that triggered a pending spike (the last excitatory one of the instant in
                # forward order: the first met here) takes that spike's time sensitivity.
                claim = live[:, None] & c["trig_on"][None, :] & (c["trig_t"] == t_ev)[None, :] & (w > 0)
                last = jnp.max(jnp.where(claim, jnp.arange(rows.shape[0])[:, None], -1), axis=0)
                mine = claim & (jnp.arange(rows.shape[0])[:, None] == last[None, :])
                ds = ds + jnp.sum(jnp.where(mine, c["trig_g"][None, :], 0.0), axis=1)
                trig_on = c["trig_on"] & ~jnp.any(mine, axis=0)
            # dL/ds lands in this event's TG entry; a spike's entry becomes g below (one write per step).
            tg_here = c["tg"][x["tg"]] + jnp.sum(ds)
            j = x["nrn"]
            hot = iota_n == j
            cur = x["cur"]
            t_ref = t_ref_all[j]
            new = dict(t=t_ev, lam_u=lam_u, lam_i=lam_i)
            if db is not None:
                new["db"] = db
            g = tg_here
            if nrn.has_refrac:
                # Only neurons between a spike and an in-window release collect I(r) (pend_r is set there).
                decay = jnp.exp(-(jnp.where(c["pend_on"], c["pend_r"], t_ev) - t_ev) / tau_s)
                landed = jnp.sum(jnp.where(live[:, None], w, 0.0), axis=0)
                pend_i = c["pend_i"] + jnp.where(c["pend_on"], landed * decay, 0.0)
                # Release: remember lambda_v(r+) and start collecting I(r); v is clamped below r.
                rel = hot & is_rel
                pend_lam = jnp.where(rel, lam_u, c["pend_lam"])
                pend_i = jnp.where(rel, 0.0, pend_i)
                pend_r = jnp.where(rel, t_ev, c["pend_r"])
                pend_on = c["pend_on"] | rel
                clamped = c["clamped"] | rel
                lam_u = jnp.where(rel, 0.0, lam_u)
                # At the spike the release adds -lambda_v(r+) du/dt(r+).
                i_release = cur * jnp.exp(-t_ref / tau_s[j]) + pend_i[j]
                g = g + jnp.where(pend_on[j], -pend_lam[j] * (i_release - u_reset[j]) / tau_m[j], 0.0)
                spk = hot & is_spk
                new.update(
                    clamped=clamped & ~spk,
                    pend_on=pend_on & ~spk,
                    pend_lam=jnp.where(spk, 0.0, pend_lam),
                    pend_i=pend_i,
                    pend_r=pend_r,
                )

            # Spike: lambda_v jumps by the implicit-function rule.
            if nrn.has_jump:  # the current slot holds the trigger flag there, and the current is 0
                triggered = jump_all[j] & (cur > 0.5)
                cur = jnp.where(jump_all[j], 0.0, cur)
            scale = jnp.where(jnp.isfinite(tau_m[j]), theta[j] / tau_m[j], drift_all[j])
            slope_minus = guarded_slope((cur - theta[j]) / tau_m[j] + drift_all[j], scale)
            slope_plus = jnp.where(t_ref > 0, 0.0, (cur - u_reset[j]) / tau_m[j] + drift_all[j])
            new_lam = (lam_u[j] * slope_plus - g) / jnp.where(is_spk, slope_minus, 1.0)
            if nrn.has_jump:
                # A jump crossing: the spike's time is its trigger's arrival (claimed by that delivery
                # below, in this sweep's order), and nothing before the jump changes that time.
                trig = hot & is_spk & triggered
                new["trig_g"] = jnp.where(trig, g - lam_u[j] * slope_plus, c["trig_g"])
                new["trig_t"] = jnp.where(trig, t_ev, c["trig_t"])
                new["trig_on"] = trig_on | trig
                new_lam = jnp.where(triggered, 0.0, new_lam)
            new["lam_u"] = jnp.where(hot & is_spk, new_lam, lam_u)
            new["tg"] = c["tg"].at[x["tg"]].set(jnp.where(is_spk, g, tg_here))
            if rows_as_outputs:
                return new, (dw_rows, ds)
            new["dw"] = c["dw"].at[rows].add(dw_rows)
            return new, (jnp.zeros((0,), dtype), ds)

        final, (dw_rows, ds_all) = lax.scan(step, carry0, cat)
        rows = jnp.concatenate([cat["row"][:, None], cat["irow"]], axis=1)
        edge = jnp.concatenate(
            [
                cat["edge"][:, None],
                jnp.broadcast_to(
                    jnp.asarray([edge_id[e.key] for e in internal[1:]], jnp.int32)[: rows.shape[1] - 1],
                    rows[:, 1:].shape,
                ),
            ],
            axis=1,
        )
        if rows_as_outputs:
            dw_all = jax.ops.segment_sum(dw_rows.reshape(-1, n), rows.reshape(-1), num_segments=w_stack.shape[0])
        else:
            dw_all = final["dw"]
        dd_all = jax.ops.segment_sum(ds_all.reshape(-1), edge.reshape(-1), num_segments=max(len(edges), 1))
        db_all = jnp.zeros((n,), dtype)
        if with_bias:  # the stretch from the first event back to t = 0
            free_b = ~final["clamped"] if nrn.has_refrac else True
            db_all = final["db"] + bias_integral(final["lam_u"], final["lam_i"], final["t"], nrn, free_b)
        return dw_all, dd_all, final["tg"], db_all

    if internal:
        # Merging needs every internal delay to be 0; delays are run-time parameters, so this is a cond
        # (a real branch: the delays are not batched).
        instant = jnp.all(jnp.stack([sub["delay"][e.key] == 0 for e in internal]))
        dw_all, dd_all, tg_final, db_all = lax.cond(instant, lambda: sweep(True), lambda: sweep(False))
    else:
        dw_all, dd_all, tg_final, db_all = sweep(False)
    if with_bias:
        for p in stage.populations:
            off = stage.offsets[p.name]
            d_sub["bias"][p.name] = db_all[off : off + p.size].astype(d_sub["bias"][p.name].dtype)

    for e in edges:
        off = stage.offsets[e.target]
        b = base[e.key]
        dw = dw_all[b : b + e.source_size, off : off + e.target_size]
        if e.mask is not None:
            dw = jnp.where(e.mask, dw, 0.0)
        d_sub["weight"][e.key] = dw.astype(d_sub["weight"][e.key].dtype)
        d_sub["delay"][e.key] = dd_all[edge_id[e.key]].astype(d_sub["delay"][e.key].dtype)
    for e in stage.external:
        size = buffers[e.source].times.shape[0]
        k0 = ext_off[e.key]
        d_times[e.source] = d_times[e.source] + tg_final[k0 : k0 + size].astype(d_times[e.source].dtype)
    return d_sub, d_times
