"""Adjoints: how gradients flow through a stage of the event program.

Two interchangeable adjoints (as diffrax offers several), chosen with
``snncomp.compile(..., adjoint="eventprop" | "autodiff")``:

* :class:`EventPropAdjoint` wraps each stage in an ``equinox.filter_custom_vjp``
  whose backward pass is the EventProp adjoint of ``docs/eventprop.md``: the
  adjoint state ``(lambda_v, lambda_I)`` of every neuron runs backward in time
  in closed form between events (the transpose of the forward transition
  matrix), and jumps at spikes by the implicit-function rule. It needs only the
  recorded spikes (time, neuron, current at the spike) and recomputes every
  delivery from them: memory O(events), independent of the simulated duration.
* :class:`AutodiffAdjoint` differentiates the forward pass itself with JAX. It
  is the reference: it exists for layer-parallel stages, whose forward is a
  closed form plus a root polished by one Newton step with the implicit-function
  derivative; event-queue stages (a ``lax.while_loop``) cannot be
  reverse-differentiated, and asking for it there is an error at compile time.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ...errors import TargetError
from ...ir import SPIKING_KINDS
from ._dynamics import free_coefficients
from ._events import EdgeSpec, SpikeBuffer, effective_weight
from ._layer import LayerParallelStage
from ._queue import EventQueueStage
from ._solver import AbstractCrossingSolver
from ._sort import sort_permutation
from ._stage import AbstractStage

__all__ = ["AbstractAdjoint", "AutodiffAdjoint", "EventPropAdjoint", "get_adjoint"]


class AbstractAdjoint(eqx.Module):
    """How a stage's outputs are differentiated."""

    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        """Run ``stage`` so that ``jax.grad`` of anything downstream is correct."""

    def check(self, stages: tuple[AbstractStage, ...]) -> None:
        """Raise :class:`TargetError` if this adjoint cannot differentiate these stages."""


class _Polished(AbstractCrossingSolver):
    """A solver whose result gets one Newton step carrying the implicit-function derivative.

    The root search itself then needs no derivative (it may be a ``while_loop``), which is what
    lets plain autodiff differentiate the forward pass.
    """

    inner: AbstractCrossingSolver
    name: ClassVar[str] = "polished"
    polish_default: ClassVar[bool] = True

    def peak(self, u0: Array, i0: Array, nrn: Any) -> Any:
        return self.inner.peak(u0, i0, nrn)

    def root(self, u0: Array, i0: Array, nrn: Any, peak: Any) -> Array:
        return self.inner.root(u0, i0, nrn, peak)


class AutodiffAdjoint(AbstractAdjoint):
    """Plain JAX autodiff through the forward pass (layer-parallel stages only)."""

    name: ClassVar[str] = "autodiff"

    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        polished = eqx.tree_at(
            lambda s: [p.solver for p in s.populations],
            stage,
            [_Polished(p.solver) for p in stage.populations],
        )
        return polished.biased(params)(params, buffers, t_max)

    def check(self, stages: tuple[AbstractStage, ...]) -> None:
        queued = [p.name for s in stages if isinstance(s, EventQueueStage) for p in s.populations]
        if queued:
            raise TargetError(
                f"adjoint='autodiff' cannot differentiate event-queue stages (populations {queued}): their "
                "forward pass is a lax.while_loop; use adjoint='eventprop' (the default)"
            )


def _stage_edges(stage: AbstractStage) -> tuple[EdgeSpec, ...]:
    if isinstance(stage, EventQueueStage):
        return stage.external + stage.internal
    return tuple(e for p in stage.populations for e in p.edges_in)


def _upstream(stage: AbstractStage) -> tuple[str, ...]:
    own = {p.name for p in stage.populations}
    return tuple(sorted({e.source for e in _stage_edges(stage) if e.source not in own}))


class EventPropAdjoint(AbstractAdjoint):
    """Exact gradients by the EventProp adjoint (``docs/eventprop.md``)."""

    name: ClassVar[str] = "eventprop"

    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        sub = _stage_params(stage, params)
        ups = _upstream(stage)
        times = {n: buffers[n].times for n in ups}
        # The current at each upstream spike is a residual of *that* stage's adjoint, not an input here.
        rest = {n: (buffers[n].neurons, lax.stop_gradient(buffers[n].current), buffers[n].overflow) for n in ups}
        return _with_eventprop(stage)(sub, times, rest, lax.stop_gradient(t_max))


def _stage_params(stage: AbstractStage, params: dict) -> dict:
    """The parameters a stage reads: its edges' weights and delays, its populations' biases."""
    keys = tuple(e.key for e in _stage_edges(stage))
    sub = {"weight": {k: params["weight"][k] for k in keys}, "delay": {k: params["delay"][k] for k in keys}}
    if "bias" in params:
        sub["bias"] = {p.name: params["bias"][p.name] for p in stage.populations}
    return sub


def _bias_integral(lam_u: Array, lam_i: Array, span: Array, nrn: Any, free: Array | bool = True) -> Array:
    """``dL/d bias`` over ``span`` before a point where the adjoint is ``(lam_u, lam_i)``, per neuron.

    ``dL/db = integral of lambda . df/db``: the bias enters ``du/dt`` as ``b / tau_mem`` with instantaneous
    synapses (``b`` for ``if`` neurons) and ``dI/dt`` as ``b / tau_syn`` otherwise. Going back a time ``s``
    the adjoint is ``lambda_u alpha(s)`` and ``lambda_I gamma(s) + lambda_u beta(s)`` (``free_coefficients``),
    whose integrals are closed forms: ``tau_mem (1 - alpha)``, ``tau_syn (1 - gamma)`` and, from
    ``tau_mem du/ds = -u + I`` with ``u = beta``, ``I = gamma``: ``tau_syn (1 - gamma) - tau_mem beta``.
    While the membrane is clamped (``free`` False) ``lambda_u`` is 0 there.
    """
    alpha, beta, gamma = free_coefficients(span, nrn)
    lam_u = jnp.where(free, lam_u, 0.0)
    leaky = jnp.isfinite(nrn.tau_mem)
    jump_part = jnp.where(leaky, lam_u * (1.0 - alpha), lam_u * span)
    tm = jnp.where(leaky, nrn.tau_mem, 0.0)
    cuba_part = lam_i * (1.0 - gamma) + lam_u * ((1.0 - gamma) - tm * beta / nrn.tau_syn)
    return jnp.where(nrn.jump, jump_part, cuba_part)


def _rebuild(times: dict[str, Array], rest: dict[str, tuple]) -> dict[str, SpikeBuffer]:
    return {n: SpikeBuffer(times=times[n], neurons=rest[n][0], current=rest[n][1], overflow=rest[n][2]) for n in times}


def _with_eventprop(stage: AbstractStage) -> Any:
    """``stage`` as a function of (weights/delays, upstream spike times) whose VJP is EventProp.

    The stage (neuron constants, masks) is closed over: it is a compile-time constant.
    """

    @jax.custom_vjp
    def run(sub: dict, times: dict, rest: dict, t_max: Array) -> dict[str, SpikeBuffer]:
        return stage.biased(sub)(sub, _rebuild(times, rest), t_max)

    def fwd(sub: dict, times: dict, rest: dict, t_max: Array) -> tuple[dict, tuple]:
        out = stage.biased(sub)(sub, _rebuild(times, rest), t_max)
        return out, (sub, times, rest, t_max, out)

    def bwd(res: tuple, grad_out: dict) -> tuple:
        sub, times, rest, t_max, out = res
        buffers = _rebuild(times, rest)
        ct = {name: jnp.where(jnp.isfinite(buf.times), grad_out[name].times, 0.0) for name, buf in out.items()}
        st = stage.biased(sub)
        if isinstance(st, EventQueueStage):
            d_sub, d_times = _queue_backward(st, sub, buffers, out, ct, t_max)
        else:
            d_sub, d_times = _layer_backward(st, sub, buffers, out, ct, t_max)
        return d_sub, d_times, None, None

    run.defvjp(fwd, bwd)
    return run


def _guarded_slope(slope: Array, scale: Any) -> Array:
    """The membrane slope at a spike, kept at least ``sqrt(eps) * theta / tau_mem`` away from zero.

    A spike exactly at a grazing crossing (the peak touches threshold) has slope 0 and an
    infinite derivative; its time is ill-conditioned at the ``sqrt(eps)`` level anyway, so the
    adjoint divides by this floor instead: large but finite gradients, never inf or NaN.
    """
    if not isinstance(scale, jax.Array) and hasattr(scale, "theta"):
        scale = scale.theta / scale.tau_mem
    floor = jnp.sqrt(jnp.finfo(slope.dtype).eps) * jnp.abs(scale)
    return jnp.where(jnp.abs(slope) < floor, jnp.where(slope < 0, -floor, floor), slope)


def _zero_grads(sub: dict, times: dict[str, Array]) -> tuple[dict, dict]:
    d_sub = {group: {k: jnp.zeros_like(v) for k, v in values.items()} for group, values in sub.items()}
    return d_sub, {n: jnp.zeros_like(t) for n, t in times.items()}


# -- layer-parallel: every neuron's single spike at once ---------------------------------------------
def _layer_backward(
    stage: LayerParallelStage,
    sub: dict,
    buffers: dict[str, SpikeBuffer],
    out: dict[str, SpikeBuffer],
    ct: dict[str, Array],
    t_max: Array,
) -> tuple[dict, dict]:
    d_sub, d_times = _zero_grads(sub, {n: buffers[n].times for n in _upstream(stage)})
    for pop in stage.populations:
        if pop.kind not in SPIKING_KINDS or pop.name not in out:
            continue
        nrn = pop.nrn
        buf = out[pop.name]
        n = pop.size
        valid = buf.neurons >= 0
        idx = jnp.where(valid, buf.neurons, n)  # row n is a scratch slot for padding
        t_j = jnp.full((n + 1,), jnp.inf, buf.times.dtype).at[idx].set(jnp.where(valid, buf.times, jnp.inf))[:n]
        g_j = jnp.zeros((n + 1,), buf.times.dtype).at[idx].add(jnp.where(valid, ct[pop.name], 0.0))[:n]
        c_j = jnp.zeros((n + 1,), buf.times.dtype).at[idx].set(jnp.where(valid, buf.current, 0.0))[:n]
        spiked = jnp.isfinite(t_j)
        jump = nrn.has_jump
        # du/dt just before the spike (for instantaneous synapses the current is 0: leak and drift only).
        slope = (jnp.where(jump, 0.0, c_j) - nrn.theta) / nrn.tau_mem + nrn.drift
        slope = _guarded_slope(slope, jnp.where(jnp.isfinite(nrn.tau_mem), nrn.theta / nrn.tau_mem, nrn.drift))
        trigger = _layer_triggers(pop, sub, buffers, t_j, spiked, t_max) if jump else None
        lam = jnp.where(spiked, -g_j / jnp.where(spiked, slope, 1.0), 0.0)  # lambda_v(t_j-)
        if trigger is not None:
            # A spike at an input's arrival (the jump crossed threshold) moves with that arrival alone.
            lam = jnp.where(trigger[1] > 0, 0.0, lam)
        if "bias" in d_sub:  # lambda_v(t_j-) = lam, lambda_I(t_j-) = 0; the bias acted over [0, t_j]
            span = jnp.where(spiked, t_j, 0.0)
            d_b = _bias_integral(lam, jnp.zeros_like(lam), span, nrn)
            d_sub["bias"][pop.name] = d_sub["bias"][pop.name] + d_b.astype(d_sub["bias"][pop.name].dtype)
        for k_edge, e in enumerate(pop.edges_in):
            src = buffers[e.source]
            s = src.times + sub["delay"][e.key]
            ok = (src.neurons >= 0) & (s < t_max)
            delta = t_j[None, :] - s[:, None]
            active = ok[:, None] & spiked[None, :] & (delta > 0)
            d_safe = jnp.where(active, delta, 0.0)
            alpha, kappa, gamma = free_coefficients(d_safe, nrn)
            if jump:  # a weight jumps v: its effect at the spike decays with the membrane alone
                kappa, dkappa = alpha, -alpha / nrn.tau_mem
            else:
                dkappa = (gamma - kappa) / nrn.tau_mem
            w_eff = effective_weight(e, sub)
            rows = jnp.where(ok, src.neurons, 0)
            contrib = jnp.where(active, lam[None, :] * kappa, 0.0)
            dw = jnp.zeros_like(w_eff).at[rows].add(contrib)
            if e.mask is not None:
                dw = jnp.where(e.mask, dw, 0.0)
            ds = -jnp.sum(jnp.where(active, w_eff[rows] * lam[None, :] * dkappa, 0.0), axis=1)
            if trigger is not None:
                claims = trigger[0][k_edge]  # [K, n]: this arrival is the spike's trigger
                ds = ds + jnp.sum(jnp.where(claims, g_j[None, :], 0.0), axis=1)
            d_sub["weight"][e.key] = d_sub["weight"][e.key] + dw.astype(d_sub["weight"][e.key].dtype)
            d_sub["delay"][e.key] = d_sub["delay"][e.key] + jnp.sum(ds).astype(d_sub["delay"][e.key].dtype)
            if e.source in d_times:
                d_times[e.source] = d_times[e.source] + ds
    return d_sub, d_times


def _layer_triggers(
    pop: Any, sub: dict, buffers: dict[str, SpikeBuffer], t_j: Array, spiked: Array, t_max: Array
) -> tuple[list[Array], Array]:
    """Which arrival triggered each jump-crossing spike: ``([K_e, n] per edge, claimed per neuron)``.

    A neuron with instantaneous synapses that spikes at an input's arrival crossed threshold by that
    jump, so its spike time is the arrival time. With several inputs at that instant the derivative is
    one-sided; the convention (shared with the event queue's adjoint) gives the spike's time to the
    last excitatory input applied in the forward order (edges in order, then spikes in buffer order).
    """
    keys, trig = [], []
    base = 1
    for e in pop.edges_in:
        src = buffers[e.source]
        s = src.times + sub["delay"][e.key]
        ok = (src.neurons >= 0) & (s < t_max)
        w = effective_weight(e, sub)[jnp.where(ok, src.neurons, 0)]
        hit = ok[:, None] & spiked[None, :] & (s[:, None] == t_j[None, :]) & (w > 0)
        order = base + jnp.arange(s.shape[0])
        keys.append(jnp.where(hit, order[:, None], 0))
        trig.append(hit)
        base += s.shape[0]
    if not keys:
        return [], jnp.zeros_like(t_j, dtype=jnp.int32)
    claim = jnp.max(jnp.stack([jnp.max(k, axis=0) for k in keys]), axis=0)
    return [(k == claim[None, :]) & h for k, h in zip(keys, trig)], claim


# -- event queue: one backward sweep over every event in reverse time order -----------------------
_INTERNAL, _EXTERNAL, _RELEASE, _SPIKE = 0, 1, 2, 3
# Order within one instant in the backward sweep (reverse of the forward's), used with instantaneous
# synapses: zero-delay deliveries (after their spike), spikes, delayed internal deliveries, external
# deliveries, releases (a refractory period ends before anything else of its instant happens).
_RANK = {_INTERNAL: 0, _SPIKE: 1, _EXTERNAL: 3, _RELEASE: 4}
_RANK_DELAYED = 2


def _queue_backward(
    stage: EventQueueStage,
    sub: dict,
    buffers: dict[str, SpikeBuffer],
    out: dict[str, SpikeBuffer],
    ct: dict[str, Array],
    t_max: Array,
) -> tuple[dict, dict]:
    nrn = stage.nrn
    n = stage.n_total
    dtype = nrn.tau_mem.dtype
    ups = _upstream(stage)
    d_sub, d_times = _zero_grads(sub, {u: buffers[u].times for u in ups})
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
                db = c["db"] + _bias_integral(c["lam_u"], c["lam_i"], c["t"] - t_ev, nrn, free_b)
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
            slope_minus = _guarded_slope((cur - theta[j]) / tau_m[j] + drift_all[j], scale)
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
            db_all = final["db"] + _bias_integral(final["lam_u"], final["lam_i"], final["t"], nrn, free_b)
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


ADJOINTS: dict[str, type[AbstractAdjoint]] = {"eventprop": EventPropAdjoint, "autodiff": AutodiffAdjoint}


def get_adjoint(name: str | AbstractAdjoint) -> AbstractAdjoint:
    """The adjoint called ``name`` (or the instance given)."""
    if isinstance(name, AbstractAdjoint):
        return name
    if name not in ADJOINTS:
        raise TargetError(f"unknown adjoint {name!r}; choose one of {', '.join(sorted(ADJOINTS))}")
    return ADJOINTS[name]()


# -- hardware in the loop: EventProp on spike times recorded elsewhere -------------------------------
def _currents_at_spikes(program: Any, params: dict, buffers: dict[str, SpikeBuffer], pop: Any, t_max: Array) -> Array:
    """``I`` of each recorded spike's neuron just before the spike, replayed from every delivery."""
    buf = buffers[pop.name]
    ok = buf.neurons >= 0
    j = jnp.where(ok, buf.neurons, 0)
    tau_s = jnp.broadcast_to(pop.nrn.tau_syn, (pop.size,))[j]
    # A bias starts the current at i_init (``_dynamics``); it decays like any delivery's.
    i_init = jnp.broadcast_to(pop.nrn.i_init, (pop.size,))[j]
    total = i_init * jnp.exp(-jnp.where(ok, buf.times, 0.0) / tau_s)
    trig = jnp.zeros(buf.times.shape, bool)
    for e in pop.edges_in:
        src = buffers[e.source]
        s = src.times + params["delay"][e.key]
        live = (src.neurons >= 0) & (s < t_max)
        w = effective_weight(e, params)[jnp.where(live, src.neurons, 0)][:, j]  # [S, K]
        before = live[:, None] & (s[:, None] < buf.times[None, :])
        decay = jnp.exp(-jnp.where(before, buf.times[None, :] - s[:, None], 0.0) / tau_s[None, :])
        total = total + jnp.sum(jnp.where(before, w * decay, 0.0), axis=0)
        trig = trig | jnp.any(live[:, None] & (s[:, None] == buf.times[None, :]) & (w > 0), axis=0)
    if pop.nrn.has_jump:
        # Instantaneous synapses: the slot holds whether the spike came at an input's arrival (the
        # event queue's convention, see _queue), the current itself is 0.
        total = jnp.where(jnp.broadcast_to(pop.nrn.jump, (pop.size,))[j], trig.astype(total.dtype), total)
    return jnp.where(ok, total, 0.0)


def _program_backward(
    program: Any, params: dict, buffers: dict[str, SpikeBuffer], ct: dict[str, Array], t_max: Array
) -> tuple[dict, dict[str, Array]]:
    """EventProp through every stage in reverse order; cotangents of spike times flow upstream."""
    grads = {group: {k: jnp.zeros_like(v) for k, v in values.items()} for group, values in params.items()}
    ct = dict(ct)
    for name, buf in buffers.items():
        ct.setdefault(name, jnp.zeros_like(buf.times))
    for stage in reversed(program.stages):
        sub = _stage_params(stage, params)
        stage = stage.biased(sub)
        out = {p.name: buffers[p.name] for p in stage.populations if p.kind in SPIKING_KINDS and p.name in buffers}
        if not out:
            continue
        stage_ct = {n: jnp.where(jnp.isfinite(out[n].times), ct[n], 0.0) for n in out}
        if isinstance(stage, EventQueueStage):
            d_sub, d_times = _queue_backward(stage, sub, buffers, out, stage_ct, t_max)
        else:
            d_sub, d_times = _layer_backward(stage, sub, buffers, out, stage_ct, t_max)
        for group, values in d_sub.items():
            for k, v in values.items():
                grads[group][k] = grads[group][k] + v
        for n, v in d_times.items():
            ct[n] = ct[n] + v
    return grads, ct


def replay(
    program: Any,
    params: dict,
    inputs: dict[str, tuple[Array, Array]],
    spikes: dict[str, tuple[Array, Array]],
    t_max: Array,
) -> dict[str, Array]:
    """Spike times recorded elsewhere (the BSS-2 mock), made differentiable by EventProp on the model.

    One sample. ``inputs[name] = (times, neurons)`` and ``spikes[population] = (times, neurons)`` (model
    units, padded with ``+inf``/``-1``; spikes sorted by time). Returns ``{population: times}``, equal to
    the given times, whose VJP is EventProp on ``program`` (the software model) evaluated at the recorded
    spikes: the states at the spikes are recovered by replaying every delivery in closed form. Gradients
    flow to ``params`` and to the input spike times.
    """
    plans = program.plans()
    in_times = {n: inputs[n][0] for n in inputs}
    # Everything but the parameters and input times enters as an argument without a cotangent:
    # under ``jit`` these are tracers, which a ``custom_vjp`` must not close over.
    fixed = (
        {n: inputs[n][1] for n in inputs},
        {n: lax.stop_gradient(spikes[n][0]) for n in spikes},
        {n: spikes[n][1] for n in spikes},
        lax.stop_gradient(jnp.asarray(t_max)),
    )

    def buffers_of(p: dict, times: dict, fixed: tuple) -> dict[str, SpikeBuffer]:
        in_neurons, rec_times, rec_neurons, t_max = fixed
        bufs = {
            n: SpikeBuffer(
                times=times[n], neurons=in_neurons[n], current=jnp.zeros_like(times[n]), overflow=jnp.zeros((), bool)
            )
            for n in times
        }
        for n in rec_times:
            bufs[n] = SpikeBuffer(
                times=rec_times[n],
                neurons=rec_neurons[n],
                current=jnp.zeros_like(rec_times[n]),
                overflow=jnp.zeros((), bool),
            )
        # Currents need every upstream buffer, so fill them stage by stage.
        for stage in program.stages:
            for pop in stage.populations:
                if pop.name in rec_times:
                    b = bufs[pop.name]
                    plan = plans[pop.name]
                    if "bias" in p:
                        plan = eqx.tree_at(lambda q: q.nrn, plan, plan.nrn.with_bias(p["bias"][pop.name]))
                    cur = _currents_at_spikes(program, p, bufs, plan, t_max)
                    bufs[pop.name] = SpikeBuffer(times=b.times, neurons=b.neurons, current=cur, overflow=b.overflow)
        return bufs

    @jax.custom_vjp
    def run(p: dict, times: dict, fixed: tuple) -> dict[str, Array]:
        return dict(fixed[1])

    def fwd(p: dict, times: dict, fixed: tuple) -> tuple[dict, tuple]:
        return dict(fixed[1]), (p, times, fixed)

    def bwd(res: tuple, ct: dict) -> tuple:
        p, times, fixed = res
        bufs = buffers_of(p, times, fixed)
        grads, ct_all = _program_backward(program, p, bufs, ct, fixed[3])
        d_times = {n: jnp.where(jnp.isfinite(times[n]), ct_all.get(n, jnp.zeros_like(times[n])), 0.0) for n in times}
        return grads, d_times, None

    run.defvjp(fwd, bwd)
    return run(params, in_times, fixed)
