"""The event-queue schedule: a ``lax.while_loop`` over events in time order.

Used for recurrent components and multi-spike populations. The stage's
neurons are concatenated into one state vector (``u``, ``I``, refractory end,
spike count, and the cached time of each neuron's next threshold crossing).
Each iteration takes the earliest of three kinds of event:

1. the next *external* delivery (from inputs and earlier stages, merged and
   sorted before the loop);
2. the next *internal* delivery of each projection inside the stage: the
   spikes this stage already recorded, read back through one pointer per
   projection (spikes are recorded in time order and a projection has one
   delay, so its deliveries come in that same order: the recorded buffer is
   the queue, and no separate priority queue is needed);
3. the earliest cached threshold crossing (a spike);
4. per refractory population, its second pending release (the end of a
   refractory period), which does nothing but end the step: a population's
   releases come in the order of its spikes (one ``t_refrac`` per population),
   so its log is their queue too, and with the second one bounding the step
   only the first can fall strictly inside it. The refractory clamp then needs
   per-sample exponentials only, where a release anywhere in the step would
   need one per neuron (populations with per-neuron ``t_refrac`` keep that form).

All neurons are advanced to the event in closed form, the event is applied
(``I`` jumps by a weight row, or the spiking neuron is reset, clamped for
``t_refrac`` and recorded), and the crossing times are recomputed. At equal
times, external deliveries go first, then internal ones in projection order,
then spikes (lowest neuron index first), then releases.

Buffers have the fixed sizes the ``schedule`` pass chose. A spike that does
not fit sets the population's overflow flag and ends the sample's loop (so
nothing later is silently wrong: the flag says the sample is incomplete).
The loop is bounded: every iteration consumes one delivery, one recorded
spike or one release, all finite.

The module stays whole (about 450 lines): the loop body, the release queue and
the crossing search share the loop's state layout, and split apart each would
need the others' indexing.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ...errors import TargetError
from ...ir import SPIKING_KINDS
from ._batch import batch_any
from ._dynamics import NeuronParams, evolve, free_coefficients, free_evolve
from ._eventprop_common import bias_integral
from ._events import EdgeSpec, SpikeBuffer, effective_weight, incoming
from ._native import reason as _native_reason
from ._native import rec_grad as _rec_grad
from ._native import rec_operands as _rec_operands
from ._native import rec_reason as _rec_reason
from ._native import run as _native_run
from ._native import run_rec as _run_rec
from ._queue_adjoint import queue_backward
from ._stage import AbstractStage, PopulationPlan

__all__ = ["EventQueueStage"]


def _first_max(x: Array) -> Array:
    """``argmax(x)`` (lowest index among ties) of a 1-D array.

    Two plain reductions: XLA's CPU backend runs the variadic (value, index) reduction behind
    ``argmax`` several times slower, and this is on every event's path.
    """
    iota = jnp.arange(x.shape[0], dtype=jnp.int32)
    j = jnp.min(jnp.where(x == jnp.max(x), iota, x.shape[0]))
    return jnp.minimum(j, x.shape[0] - 1)


# Iterations per test of the loop's condition. Where the batch axis is not named (``_batch``) the condition
# is per sample, and every test selects each carried array (spike logs included) between its old and new
# value for the whole batch; an iteration of a finished sample changes nothing, so ``_CHUNK`` iterations
# run between tests (a fixed trip count: no select) and at most ``_CHUNK - 1`` of them are wasted at the
# end. Long logs make the select dear (``_CHUNK_LONG``): 32 was 1.2x faster than 8 on
# bench/sim_throughput.py's recurrent network (2,000-slot log), where a network with short logs and few
# events lost 5 %. Under the named axis the condition is the batch's, with no select at all.
_CHUNK = 8
_CHUNK_LONG = 32

# Writes into a spike log of at most this many slots are one-hot selects (vectorized, fused with the
# rest of the loop body); longer logs take a scatter, whose cost does not grow with the length.
_ONE_HOT_MAX = 512


def _full_rows(w: Array, offset: int, n: int) -> Array:
    """``w`` ``[src, size]`` as rows over all ``n`` neurons of the stage, placed at ``offset``."""
    if offset == 0 and w.shape[1] == n:
        return w
    return jnp.zeros((w.shape[0], n), w.dtype).at[:, offset : offset + w.shape[1]].set(w)


class EventQueueStage(AbstractStage):
    """Populations simulated together by one loop over events (a strongly connected component)."""

    strategy: ClassVar[str] = "event-queue"
    reverse_differentiable: ClassVar[bool] = False  # a lax.while_loop
    nrn: NeuronParams
    """The stage's neurons, concatenated in population order."""
    external: tuple[EdgeSpec, ...]
    internal: tuple[EdgeSpec, ...]
    offsets: dict[str, int] = eqx.field(static=True)
    n_total: int = eqx.field(static=True)
    stop_on: tuple[str, ...] = eqx.field(static=True, default=())
    """Populations whose first spikes end the loop (``schedule{early_stop=...}``)."""
    loop: str = eqx.field(static=True, default="auto")
    """``"vectorized"``: the ``lax.while_loop`` below, over the whole batch at once. ``"native"``: in C.
    A stage of populations whose neurons spike at most once runs in the single-spike recurrent kernel
    (``native/recurrent.c``, an XLA custom call with a closed-form EventProp backward; :meth:`kernel_reason`),
    under ``"auto"`` too. Other stages under ``"native"`` run the same schedule in the C event loop, one
    sample at a time (``_native``); ``"auto"`` chooses it where the stage's spike logs hold several spikes
    per neuron (multi-spike populations: thousands of events per sample, each touching few neurons, where
    the vectorized loop pays a whole iteration per event), the vectorized loop otherwise (single-spike
    stages the kernel does not cover: few events, and a batch-wide iteration costs less than the C loop's
    per-sample work; measured in ``docs/performance.md``)."""

    def kernel_reason(self) -> str | None:
        """Why this stage does not run in the single-spike recurrent kernel (None: it does).

        Populations whose neurons spike at most once, one ``tau_mem`` and ``tau_syn`` (``native/recurrent.c``):
        the spikes by the layer kernel's sweep, and the EventProp backward in closed form, both in C as XLA
        custom calls.
        """
        if self.loop == "vectorized":
            return "event_loop='vectorized'"
        return _rec_reason(self)

    def native_reason(self) -> str | None:
        """Why this stage does not run in C (None: it does)."""
        if self.loop == "vectorized":
            return "event_loop='vectorized'"
        if self.kernel_reason() is None:
            return None
        why = _native_reason(self)
        if why is None and self.loop == "auto" and sum(p.buffer for p in self.populations) <= self.n_total:
            return "single-spike populations (event_loop='auto' keeps the vectorized loop)"
        return why

    def check_loop(self) -> None:
        """Raise if ``event_loop='native'`` was asked for a stage the C loop cannot run."""
        if self.loop not in ("auto", "native", "vectorized"):
            raise TargetError(f"event_loop must be 'auto', 'native' or 'vectorized', got {self.loop!r}")
        if self.loop == "native" and self.kernel_reason() is not None and (why := _native_reason(self)) is not None:
            names = ", ".join(p.name for p in self.populations)
            raise TargetError(f"event_loop='native' cannot run the event-queue stage of {names}: {why}")

    def describe(self) -> list[str]:
        if self.kernel_reason() is None:
            return [*super().describe(), "event loop: single-spike recurrent kernel, native (C), closed-form backward"]
        why = self.native_reason()
        return [*super().describe(), f"event loop: {'native (C)' if why is None else 'vectorized: ' + why}"]

    def edges(self) -> tuple[EdgeSpec, ...]:
        return self.external + self.internal

    def eventprop(
        self,
        params: dict,
        buffers: dict[str, SpikeBuffer],
        out: dict[str, SpikeBuffer],
        ct: dict[str, Array],
        t_max: Array,
    ) -> tuple[dict, dict[str, Array]]:
        if self.kernel_reason() is None:
            return self._kernel_backward(params, buffers, out, ct, t_max)
        return queue_backward(self, params, buffers, out, ct, t_max)

    def _kernel_backward(
        self,
        params: dict,
        buffers: dict[str, SpikeBuffer],
        out: dict[str, SpikeBuffer],
        ct: dict[str, Array],
        t_max: Array,
    ) -> tuple[dict, dict[str, Array]]:
        """The closed-form EventProp backward of the single-spike kernel (``native/recurrent.c``).

        The kernel returns the derivatives by what it was given (the external deliveries' matrix and
        times, the internal rows and delays); one ``jax.vjp`` of their construction from the weights,
        delays and upstream spike times carries them back, masks included.
        """
        nrn = self.nrn
        dtype = nrn.tau_mem.dtype
        n = self.n_total
        ups = self.upstream()

        def operands(sub: dict, up: dict[str, Array]) -> tuple[tuple[Array, Array, Array, Array], Array]:
            bufs = {**buffers, **{u: eqx.tree_at(lambda b: b.times, buffers[u], up[u]) for u in ups}}
            inc = incoming(self.external, self.offsets, n, bufs, sub, t_max, dtype, sort=False)
            wrec, drec = _rec_operands(self, sub, dtype)
            return (inc.times, inc.matrix, wrec, drec), inc.rows

        (times, matrix, _, _), pull, rows = jax.vjp(operands, params, {u: buffers[u].times for u in ups}, has_aux=True)
        pops = self.populations  # one log slot per neuron each (kernel_reason), in stage order
        t_s, nb_s, cur_s = (
            jnp.concatenate([getattr(out[p.name], f) for p in pops]) for f in ("times", "neurons", "current")
        )
        lam, d_matrix, d_times, d_wrec, d_drec = _rec_grad(
            self, params, (t_s, nb_s, cur_s), jnp.concatenate([ct[p.name] for p in pops]), times, rows, matrix, t_max
        )
        d_sub, d_up = pull((d_times, d_matrix, d_wrec, d_drec))
        if "bias" in d_sub:  # lam_v(t_j-) = lam, lam_I(t_j-) = 0; the bias acted over [0, t_j] (as a layer's)
            for p in pops:
                off, buf = self.offsets[p.name], out[p.name]
                valid = buf.neurons >= 0
                idx = jnp.where(valid, buf.neurons, p.size)
                t_j = jnp.zeros((p.size + 1,), dtype).at[idx].set(jnp.where(valid, buf.times, 0.0))[: p.size]
                d_b = bias_integral(lam[off : off + p.size], jnp.zeros((p.size,), dtype), t_j, p.nrn)  # 0: no spike
                d_sub["bias"][p.name] = d_sub["bias"][p.name] + d_b.astype(d_sub["bias"][p.name].dtype)
        return d_sub, d_up

    def _kernel_forward(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        dtype = self.nrn.tau_mem.dtype
        n = self.n_total
        inc = incoming(self.external, self.offsets, n, buffers, params, t_max, dtype, sort=False)
        ordered = len(self.external) <= 1 and all(buffers[e.source].sorted for e in self.external)
        times, neurons, current = _run_rec(self, params, inc.times, inc.rows, inc.matrix, t_max, presorted=ordered)
        out = {}
        for p in self.populations:
            sl = slice(self.offsets[p.name], self.offsets[p.name] + p.size)
            # One spike per neuron and a log of one slot per neuron (kernel_reason): it cannot overflow.
            out[p.name] = SpikeBuffer(
                times=times[sl], neurons=neurons[sl], current=current[sl], overflow=jnp.zeros((), bool)
            )
        return out

    def max_iterations(self, external_events: int) -> int:
        """Upper bound on loop iterations for a sample with ``external_events`` deliveries."""
        bufs = {p.name: p.buffer for p in self.populations}
        releases = sum(p.buffer for p in self._release_pops() or ())
        return external_events + sum(bufs.values()) + sum(bufs[e.source] for e in self.internal) + releases + 2

    def _release_pops(self) -> list[PopulationPlan] | None:
        """The refractory spiking populations, or None where their releases may come out of spike order.

        With one ``t_refrac`` per population, a population's releases come in the order of its recorded
        spikes: its spike log is their queue, read through a pointer. Then at most one release time falls
        strictly inside a loop step (the next one is an event candidate), so the step's per-neuron
        refractory clamp needs only per-sample exponentials. Otherwise (per-neuron ``t_refrac``) the loop
        keeps the per-neuron form.
        """
        pops = [p for p in self.populations if p.kind in SPIKING_KINDS and p.nrn.has_refrac]
        if any(p.nrn.t_refrac.shape[0] != 1 or p.buffer <= 0 for p in pops):
            return None
        return pops

    def _evolve(self, u: Array, i: Array, ref_end: Array, t0: Array, t1: Array, release: Array) -> tuple[Array, Array]:
        """:func:`evolve` where no release but each population's ``release`` falls strictly between ``t0`` and ``t1``.

        Free neurons take the step's coefficients, held ones keep ``u``, and a neuron released inside the
        step (its ``ref_end`` is its population's ``release``) those of its free part: all per sample.
        """
        nrn, n = self.nrn, self.n_total
        u_free, i1 = free_evolve(u, i, t1 - t0, nrn)
        pops = self._release_pops() or []
        if len(pops) == 1 and pops[0].size == n:  # per-sample scalars where the tau's are shared
            start, prm = jnp.clip(release[0], t0, t1), pops[0].nrn
        else:
            start, prm = jnp.broadcast_to(t0, (n,)), nrn
            for r, p in enumerate(pops):
                mine = np.zeros((n,), bool)
                mine[self.offsets[p.name] : self.offsets[p.name] + p.size] = True
                start = jnp.where(mine, jnp.clip(release[r], t0, t1), start)
        alpha, beta, _ = free_coefficients(t1 - start, prm)
        # the current decays while the membrane is held
        held_decay, span = jnp.exp(-(start - t0) / prm.tau_syn), t1 - start
        u_rel = alpha * u + beta * (i * held_decay)
        if nrn.has_drift:
            u_rel = u_rel + nrn.drift * span
        return jnp.where(ref_end <= t0, u_free, jnp.where(ref_end >= t1, u, u_rel)), i1

    def _earliest(
        self, u: Array, i: Array, ref_end: Array, count: Array, t_now: Array, release: Array | None = None
    ) -> tuple[Array, Array]:
        """The neuron with the earliest threshold crossing after ``t_now`` and its time (``+inf``: none).

        Each neuron's crossing starts at its free time (the end of its refractory period, or now), and
        ties go to the lowest index. A population whose solver has an ``order_key`` and a shared
        ``tau_mem`` solves for one neuron's time instead of every neuron's.

        ``release`` (see :meth:`_release_pops`): per tracked population, its next release time. Only the
        neurons released then are looked at among the refractory ones, with that time's per-sample decay
        factors: the others are released no earlier than the loop's next event (the second release is an
        event candidate), which looks again.
        """
        nrn = self.nrn
        t_free = jnp.maximum(ref_end, t_now) if nrn.has_refrac else jnp.broadcast_to(t_now, u.shape)
        if release is None:
            i_free = i * jnp.exp(-(t_free - t_now) / nrn.tau_syn) if nrn.has_refrac else i
        else:
            i_free = i
        tracked = {p.name: r for r, p in enumerate(self._release_pops() or ())} if release is not None else {}
        allowed = nrn.spiking & (count < nrn.max_spikes)
        best_j = jnp.zeros((), jnp.int32)
        best_t = jnp.full((), jnp.inf, u.dtype)
        for p in self.populations:
            if p.kind not in SPIKING_KINDS:
                continue
            off = self.offsets[p.name]
            sl = slice(off, off + p.size)
            u_p, i_p, tf_p, ok_p = u[sl], i_free[sl], t_free[sl], allowed[sl]
            spec = None
            if p.name in tracked:
                assert release is not None
                wait = jnp.maximum(release[tracked[p.name]] - t_now, 0.0)
                spec = ref_end[sl] == release[tracked[p.name]]
                i_p = jnp.where(spec, i_p * jnp.exp(-wait / p.nrn.tau_syn), i_p)
                ok_p = ok_p & (spec | (ref_end[sl] <= t_now))
            key = p.solver.order_key(u_p, i_p, p.nrn) if p.nrn.tau_mem.shape[0] == 1 else None
            if key is None:
                t_p = jnp.where(ok_p, tf_p + p.solver.crossing(u_p, i_p, p.nrn), jnp.inf)
                j_p = _first_max(-t_p)
                tj = t_p[j_p]
            else:
                if spec is not None:  # a crossing from a later free start, seen from t_now
                    key = jnp.where((key >= 0) & spec, key * jnp.exp(-wait / p.nrn.tau_mem), key)
                elif nrn.has_refrac and release is None:
                    key = jnp.where(key >= 0, key * jnp.exp(-(tf_p - t_now) / p.nrn.tau_mem), key)
                key = jnp.where(ok_p, key, -1.0)
                j_p = _first_max(key)
                one = jax.tree.map(lambda x, j=j_p: lax.dynamic_slice_in_dim(x, j, 1) if x.shape[0] > 1 else x, p.nrn)
                s_j = p.solver.crossing(u_p[j_p][None], i_p[j_p][None], one)[0]
                tj = jnp.where(key[j_p] >= 0, tf_p[j_p] + s_j, jnp.inf)
            # Strictly earlier only: at equal times the earlier population (lower global index) wins.
            better = tj < best_t
            best_j = jnp.where(better, off + j_p, best_j).astype(jnp.int32)
            best_t = jnp.where(better, tj, best_t)
        return best_j, best_t

    def biased(self, params: dict) -> EventQueueStage:
        bias = params.get("bias")
        if not bias:
            return self
        stage = super().biased(params)
        full = jnp.concatenate([jnp.broadcast_to(bias[p.name], (p.size,)) for p in self.populations])
        return eqx.tree_at(lambda s: s.nrn, stage, self.nrn.with_bias(full))

    def __call__(self, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array) -> dict[str, SpikeBuffer]:
        nrn = self.nrn
        dtype = nrn.tau_mem.dtype
        n = self.n_total
        if self.kernel_reason() is None:
            return self._kernel_forward(params, buffers, t_max)
        inc = incoming(self.external, self.offsets, n, buffers, params, t_max, dtype)
        if self.native_reason() is None:
            logs = _native_run(self, params, inc.times, inc.rows, inc.matrix, t_max)
            return {
                p.name: SpikeBuffer(times=ts, neurons=nb, current=cur, overflow=of)
                for p, (ts, nb, cur, of) in zip(self.populations, logs)
            }
        ext_t = jnp.concatenate([inc.times, jnp.full((1,), jnp.inf, dtype)])
        ext_rows = jnp.concatenate([inc.rows, jnp.full((1,), inc.matrix.shape[0] - 1, jnp.int32)])
        n_ext = inc.times.shape[0]

        spiking_pops = [p for p in self.populations if p.kind in SPIKING_KINDS and p.buffer > 0]
        pop_index = {p.name: k for k, p in enumerate(spiking_pops)}
        owner = np.full((n,), -1, np.int32)
        local = np.zeros((n,), np.int32)
        for p in spiking_pops:
            off = self.offsets[p.name]
            owner[off : off + p.size] = pop_index[p.name]
            local[off : off + p.size] = np.arange(p.size)
        owner_j = jnp.asarray(owner)
        local_j = jnp.asarray(local)
        stop_mask = np.zeros((n,), bool)
        for p in self.populations:
            if p.name in self.stop_on:
                stop_mask[self.offsets[p.name] : self.offsets[p.name] + p.size] = True
        n_stop = int(stop_mask.sum())
        stop_j = jnp.asarray(stop_mask)
        internal = [e for e in self.internal if e.source in pop_index]
        # Internal weight rows span the whole stage (zeros outside the target population), as the external
        # ones do: adding a full row is one fused add, a row into a slice is a dynamic-update-slice that
        # XLA:CPU runs several times slower inside the loop.
        w_int = [_full_rows(effective_weight(e, params).astype(dtype), self.offsets[e.target], n) for e in internal]
        d_int = [params["delay"][e.key].astype(dtype) for e in internal]

        logs0 = tuple(
            (
                jnp.full((p.buffer,), jnp.inf, dtype),
                jnp.full((p.buffer,), -1, jnp.int32),
                jnp.zeros((p.buffer,), dtype),
                jnp.zeros((), jnp.int32),
            )
            for p in spiking_pops
        )
        zeros = jnp.zeros((n,), dtype)
        u0, i0 = nrn.initial_state(n)
        count0 = jnp.zeros((n,), jnp.int32)
        t0 = jnp.zeros((), dtype)
        rel_pops = self._release_pops() if nrn.has_refrac else None
        n_rel = len(rel_pops) if rel_pops is not None else 0
        rel_log = [pop_index[p.name] for p in rel_pops or ()]
        rel0 = jnp.full((n_rel,), jnp.inf, dtype) if rel_pops is not None else None
        if nrn.has_init or nrn.has_drift:  # a bias can make a neuron fire before any input arrives
            next0 = self._earliest(u0, i0, zeros, count0, t0, rel0)
        else:
            next0 = (jnp.zeros((), jnp.int32), jnp.full((), jnp.inf, dtype))
        state0: dict[str, Any] = dict(
            t=jnp.zeros((), dtype),
            u=u0,
            i=i0,
            ref_end=zeros,
            count=count0,
            next_j=next0[0],
            next_t=next0[1],
            ext_ptr=jnp.zeros((), jnp.int32),
            int_ptr=jnp.zeros((len(internal),), jnp.int32),
            int_t=jnp.full((len(internal),), jnp.inf, dtype),
            int_src=jnp.zeros((len(internal),), jnp.int32),
            logs=logs0,
            rel_ptr=jnp.zeros((n_rel,), jnp.int32),
            rel_t=jnp.full((n_rel,), jnp.inf, dtype),
            rel_next=jnp.full((n_rel,), jnp.inf, dtype),
            overflow=jnp.zeros((len(spiking_pops),), bool),
            first=jnp.zeros((), jnp.int32),
            done=jnp.zeros((), bool),
            it=jnp.zeros((), jnp.int32),
        )
        limit = self.max_iterations(n_ext)

        def cond(st: dict) -> Array:
            # Under the executable's named batch axis the whole batch agrees (no per-sample select).
            return batch_any((~st["done"]) & (st["it"] < limit))

        iota_n = jnp.arange(n)
        iota_buf = {k: jnp.arange(p.buffer) for k, p in enumerate(spiking_pops)}
        # A spike's delivery through a projection with delay 0 happens at the spike's own time, right after
        # it: it is applied in the spike's iteration (the loop then runs once per spike, not twice). The
        # delay is a run-time parameter, so this is decided per projection inside the program.
        instant = [d == 0 for d in d_int]
        u_reset = jnp.broadcast_to(nrn.u_reset, (n,))
        t_refrac = jnp.broadcast_to(nrn.t_refrac, (n,))
        jump = jnp.broadcast_to(nrn.jump, (n,))

        def body(st: dict) -> dict:
            logs = st["logs"]
            cands = [ext_t[st["ext_ptr"]]] + [st["int_t"][k] for k in range(len(internal))]
            j = st["next_j"]
            cands.append(st["next_t"])
            # A population's second pending release ends the step (it does nothing else): then only its
            # first can fall strictly inside the step.
            cands += [st["rel_next"][r] for r in range(n_rel)]
            cand = jnp.stack(cands)
            kind = _first_max(-cand)  # first minimum: external, then internal, then spike
            t_ev = cand[kind]
            # A finished sample's iteration changes nothing (see _CHUNK).
            go = (t_ev < t_max) & ~st["done"] & (st["it"] < limit)
            t1 = jnp.where(go, t_ev, st["t"])
            if rel_pops is None:
                u, i = evolve(st["u"], st["i"], st["ref_end"], st["t"], t1, nrn)
            else:
                u, i = self._evolve(st["u"], st["i"], st["ref_end"], st["t"], t1, st["rel_t"])

            is_ext = go & (kind == 0)
            row = inc.matrix[ext_rows[st["ext_ptr"]]]
            # A refractory neuron's membrane is held: an instantaneous input is lost there.
            free = t1 >= st["ref_end"] if nrn.has_refrac else True
            u, i = nrn.deliver(u, i, jnp.where(is_ext, row, 0.0), free)
            ext_ptr = st["ext_ptr"] + is_ext.astype(jnp.int32)

            # Per-projection and per-population flags are stacked once: a tiny scatter per entry is a
            # kernel of its own under vmap.
            steps = [jnp.zeros((), bool)] * len(internal)
            for k in range(len(internal)):
                is_k = go & (kind == 1 + k)
                row = w_int[k][jnp.maximum(st["int_src"][k], 0)]
                u, i = nrn.deliver(u, i, jnp.where(is_k, row, 0.0), free)
                steps[k] = is_k

            is_spk = go & (kind == len(internal) + 1)
            who = owner_j[j]
            new_logs = []
            full_k = []
            overflowed = jnp.zeros((), bool)
            i_j = i[j]
            if nrn.has_jump:
                # With instantaneous synapses the current is 0; the log's current slot says instead whether
                # the spike came at an input's arrival (1: the jump crossed threshold) or by the bias (0),
                # which is what the adjoint needs to know (``_adjoint._queue_backward``).
                i_j = jnp.where(jump[j], (t_ev == st["t"]).astype(dtype), i_j)
            # Writes go through one-hot selects: under vmap a scatter per carried array costs far more on CPU.
            for k, p in enumerate(spiking_pops):
                ts, nb, cur, cnt = logs[k]
                mine = is_spk & (who == k)
                full = cnt >= p.buffer
                overflowed = overflowed | (mine & full)
                write = mine & ~full
                if p.buffer <= _ONE_HOT_MAX:
                    at_slot = write & (iota_buf[k] == cnt)
                    ts = jnp.where(at_slot, t_ev, ts)
                    nb = jnp.where(at_slot, local_j[j], nb)
                    cur = jnp.where(at_slot, i_j, cur)
                else:  # a select over a long buffer costs more than one scatter
                    slot = jnp.minimum(cnt, p.buffer - 1)
                    ts = ts.at[slot].set(jnp.where(write, t_ev, ts[slot]))
                    nb = nb.at[slot].set(jnp.where(write, local_j[j], nb[slot]))
                    cur = cur.at[slot].set(jnp.where(write, i_j, cur[slot]))
                new_logs.append((ts, nb, cur, cnt + write.astype(jnp.int32)))
                full_k.append(mine & full)
            overflow = st["overflow"] | jnp.stack(full_k) if full_k else st["overflow"]
            fire = is_spk & ~overflowed
            hot = fire & (iota_n == j)
            if n_stop:  # count the stop populations' neurons that fired for the first time
                first = st["first"] + (fire & stop_j[j] & (st["count"][j] == 0)).astype(jnp.int32)
            else:
                first = st["first"]
            u = jnp.where(hot, u_reset, u)
            # Without a refractory period nothing reads ref_end.
            ref_end = jnp.where(hot, t1 + t_refrac, st["ref_end"]) if nrn.has_refrac else st["ref_end"]
            count = st["count"] + hot.astype(jnp.int32)
            for k, e in enumerate(internal):
                now = fire & (who == pop_index[e.source]) & instant[k]
                row = w_int[k][local_j[j]]
                free_now = t1 >= ref_end if nrn.has_refrac else True
                u, i = nrn.deliver(u, i, jnp.where(now, row, 0.0), free_now)
                steps[k] = steps[k] | now
            rel_ptr, rel_t, rel_next = st["rel_ptr"], st["rel_t"], st["rel_next"]
            if n_rel:
                # Past the releases up to t1 (at most two: the second pending one bounds the step).
                rel_ptr = rel_ptr + (rel_t <= t1).astype(jnp.int32) + (rel_next <= t1).astype(jnp.int32)
                firsts: list[Array] = []
                seconds: list[Array] = []
                for r, p in enumerate(rel_pops or ()):
                    ts, _, _, cnt = new_logs[rel_log[r]]
                    t_ref = p.nrn.t_refrac[0]
                    for ptr, dst in ((rel_ptr[r], firsts), (rel_ptr[r] + 1, seconds)):
                        dst.append(jnp.where(ptr < cnt, ts[jnp.minimum(ptr, ts.shape[0] - 1)] + t_ref, jnp.inf))
                rel_t, rel_next = jnp.stack(firsts), jnp.stack(seconds)
            next_j, next_t = self._earliest(u, i, ref_end, count, t1, rel_t if rel_pops is not None else None)
            # Each projection's next delivery, read from the logs after this iteration's write: a read
            # before the write would make XLA copy the whole log every iteration.
            int_ptr = st["int_ptr"] + jnp.stack(steps).astype(jnp.int32) if internal else st["int_ptr"]
            int_t, int_src = [], []
            for k, e in enumerate(internal):
                ts, nb, _, cnt = new_logs[pop_index[e.source]]
                ptr = int_ptr[k]
                safe = jnp.minimum(ptr, ts.shape[0] - 1)
                int_t.append(jnp.where(ptr < cnt, ts[safe] + d_int[k], jnp.inf))
                int_src.append(nb[safe])
            return dict(
                t=t1,
                u=u,
                i=i,
                ref_end=ref_end,
                count=count,
                next_j=next_j,
                next_t=next_t,
                ext_ptr=ext_ptr,
                int_ptr=int_ptr,
                int_t=jnp.stack(int_t) if internal else st["int_t"],
                int_src=jnp.stack(int_src) if internal else st["int_src"],
                logs=tuple(new_logs),
                rel_ptr=rel_ptr,
                rel_t=rel_t,
                rel_next=rel_next,
                overflow=overflow,
                first=first,
                done=(~go) | overflowed | (first >= n_stop) if n_stop else (~go) | overflowed,
                it=st["it"] + 1,
            )

        steps_per_test = _CHUNK_LONG if sum(p.buffer for p in spiking_pops) > _ONE_HOT_MAX else _CHUNK

        def chunk(st: dict) -> dict:
            return lax.fori_loop(0, steps_per_test, lambda _, s: body(s), st)

        final = lax.while_loop(cond, chunk, state0)
        out: dict[str, SpikeBuffer] = {}
        for k, p in enumerate(spiking_pops):
            ts, nb, cur, _ = final["logs"][k]
            out[p.name] = SpikeBuffer(times=ts, neurons=nb, current=cur, overflow=final["overflow"][k])
        return out
