"""The emulator's run loop: one sample, in hardware time (FPGA ticks), ``vmap``-ed over the batch.

Each iteration advances every neuron from the current time ``t`` to the next of: the next FPGA clock
edge, the next input release, the next delayed bus delivery, the end of a refractory period, the end of
the run -- unless a neuron reaches threshold first (:func:`~._dynamics.crossing`), in which case time
stops at the earliest crossing and that neuron spikes. Then at most one thing happens:

- **spike** of neuron ``n`` at ``c``: the membrane is reset and clamped for the refractory period
  (``counter`` cycles of its refractory clock; with ``refractory_clock_phase`` the count starts at the
  next clock edge); the FPGA timestamps it (if its label reaches an FPGA output) at
  ``floor(c + readout_delay + jitter)`` ticks; its event enters the PADI buses of its lanes;
- **input release** of one external label (released on an FPGA clock edge): the event enters the PADI
  buses of its lanes;
- **delayed delivery** from a bus queue.

Event-rate limit: a PADI bus passes one event per tick to its drivers (so each driver sees at most one
per tick). An event finding its bus busy waits (``bus_queue`` events at most, FIFO), later ones are
dropped; both are counted. A delivered event adds ``gain * weight`` of every synapse it reaches to the
excitatory or inhibitory input of the synapse's neuron, at the delivery time.

Readout: per population a buffer of fixed capacity; a spike beyond a neuron's ``budget`` (its
``max_spikes``; the chip cannot silence a neuron) or beyond the buffer is not stored and is counted
(the latter as overflow), as are spikes whose timestamp falls at or after the end of the run.

One topic, kept whole (~500 lines): the loop body's event kinds (spike, release, delivery, clock edge,
readout) share one state record and are ordered against each other here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._dynamics import estimate, evolve, refine, slope
from ._neurons import NeuronArrays

__all__ = [
    "COUNTERS",
    "BatchResult",
    "EngineOptions",
    "MockArrays",
    "RunTables",
    "SampleResult",
    "lane_weights",
    "noise_tables",
    "run_batch",
    "sample_keys",
    "simulate",
    "trace_count",
]

COUNTERS = ("delayed", "dropped", "late", "unrecorded", "over_budget")
_EPS = 1e-9  # ticks: a bus free within this is free (rounding of busy-until times)


class RunTables(eqx.Module):
    """Device copies of the routing and readout tables (see :class:`~._routing.EventTables`)."""

    source_lanes: Int[Array, "S K"]
    lane_bus: Int[Array, " L"]
    recorded: Bool[Array, " N"]
    pop_of: Int[Array, " N"]
    index: Int[Array, " N"]
    capacity: Int[Array, " P"]
    offset: Int[Array, " P"]


@dataclass(frozen=True)
class EngineOptions:
    """Static (shape-determining) options of the run loop; equal options share one compiled program."""

    buses: int
    bus_queue: int
    rate_limit: bool
    clock_phase: bool
    record_total: int
    noise_slots: int
    noisy: bool = False
    quantize_timestamps: bool = True
    split: bool = False
    w_max: int = 63
    step: int = 16
    newton: int = 2

    @property
    def pending(self) -> int:
        """Slots for delayed deliveries: every bus can hold its queue."""
        return max(1, self.buses * self.bus_queue)


class SampleResult(eqx.Module):
    """One sample's readout (hardware ticks) and health."""

    rec_time: Float[Array, " E"]
    rec_index: Int[Array, " E"]
    overflow: Bool[Array, " P"]
    counters: Int[Array, " C"]
    iterations: Int[Array, ""]
    limit_hit: Bool[Array, ""]
    gap: Float[Array, ""]


def simulate(
    nz: NeuronArrays,
    lane_weights: Float[Array, "L N 2"],
    tables: RunTables,
    ev_time: Float[Array, " Q"],
    ev_src: Int[Array, " Q"],
    t_end: Float[Array, ""],
    jitter: Float[Array, "N J"],
    threshold_noise: Float[Array, "N J"],
    readout_delay: Float[Array, ""],
    opts: EngineOptions,
) -> SampleResult:
    """Run one sample until ``t_end`` ticks; ``ev_time``/``ev_src`` are the input releases, sorted."""
    dtype = nz.a.dtype
    N = nz.a.shape[0]
    Q = ev_time.shape[0]
    K = tables.source_lanes.shape[1]
    n_pops = tables.capacity.shape[0]
    E = opts.record_total
    Pd = opts.pending
    J = opts.noise_slots
    inf = jnp.asarray(jnp.inf, dtype)
    queue = jnp.asarray(opts.bus_queue, dtype)
    ks = jnp.arange(K)
    # Iteration bound (a guard; hitting it is reported): steps, releases, and per neuron at most one spike
    # and one refractory end per 5 ticks (the chip's shortest refractory period is 40 ns), plus margin.
    n_steps = jnp.ceil(t_end / opts.step).astype(jnp.int32) + 1
    n_ticks = jnp.ceil(t_end).astype(jnp.int32) + 1
    it_max = 2 * n_steps + 2 * Q * (K + 1) + 2 * N * (n_ticks // 5 + 2) + 64

    def cond(c: dict) -> Array:
        return (c["t"] < t_end) & (c["it"] < it_max)

    def body(c: dict) -> dict:
        t, u, ie, ii = c["t"], c["u"], c["ie"], c["ii"]
        p_in = c["p_in"]
        t_in = jnp.where(p_in < Q, ev_time[jnp.minimum(p_in, Q - 1)], inf)
        t_pend = jnp.min(c["pend_t"])
        clamped = c["ref_end"] > t
        free = ~clamped
        t_rel = jnp.min(jnp.where(clamped, c["ref_end"], inf))
        t_event = jnp.minimum(jnp.minimum(t_in, t_pend), jnp.minimum(t_rel, t_end))
        theta = nz.theta + threshold_noise[jnp.arange(N), jnp.minimum(c["nspk"], J - 1)]
        # A free neuron cannot reach threshold before the next event while max(u, ie) < theta (u is
        # driven towards ie + ii <= ie, which only decays). If no neuron can, leap to the next event;
        # otherwise take a step of at most opts.step ticks, within which the crossing search works.
        bound = jnp.where(free, theta - jnp.maximum(u, ie), inf)
        hot = jnp.any(bound <= 0)
        t_edge = (jnp.floor(t / opts.step) + 1) * opts.step
        t_next = jnp.where(hot, jnp.minimum(t_edge, t_event), t_event)
        dt = t_next - t

        u1, ie1, ii1 = evolve(u, ie, ii, dt, nz.a, nz.be, nz.bi)
        crosses, s_est, gap = estimate(u, ie, ii, u1, ie1, ii1, dt, theta, nz.a)
        gap = jnp.minimum(gap, jnp.where(bound > 0, bound, inf))  # a leap hides peaks: bound them instead
        at_start = free & (u >= theta)
        c_est = jnp.where(at_start, t, jnp.where(free & crosses, t + s_est, inf))
        n_star = jnp.argmin(c_est)
        candidate = jnp.isfinite(c_est[n_star])
        # Only the earliest candidate is decided and timed exactly; a later one waits for its turn.
        ok, s_star = refine(
            u[n_star],
            ie[n_star],
            ii[n_star],
            u1[n_star],
            dt,
            theta[n_star],
            nz.a[n_star],
            nz.be[n_star],
            nz.bi[n_star],
            s_est[n_star],
            slope(u1[n_star], ie1[n_star], ii1[n_star], nz.a[n_star]),
            opts.newton,
        )
        start_star = at_start[n_star]
        spike = candidate & (start_star | ok)
        c_star = jnp.where(start_star, t, jnp.minimum(t + s_star, t_next))
        # A rejected candidate (its maximum stays below threshold on the exact trajectory) cannot cross in
        # this step: go on to the next candidate's estimated crossing (or the end of the step).
        c_next = jnp.min(jnp.where(jnp.arange(N) == n_star, inf, c_est))
        t_new = jnp.where(spike, c_star, jnp.where(c_next > c_est[n_star], jnp.minimum(c_next, t_next), t_next))
        u2, ie2, ii2 = evolve(u, ie, ii, t_new - t, nz.a, nz.be, nz.bi)
        u2 = jnp.where(clamped, u, u2)
        rel_gap = jnp.min(jnp.where(free, gap / jnp.abs(nz.theta), inf))

        # -- what happens at t_new ---------------------------------------------------------------------------
        is_in = ~spike & (t_new == t_in)
        is_pend = ~spike & ~is_in & (t_new == t_pend)
        src = jnp.where(spike, n_star, jnp.where(is_in, ev_src[jnp.minimum(p_in, Q - 1)], -1))
        lanes = jnp.where(src >= 0, tables.source_lanes[jnp.maximum(src, 0)], -1)
        valid = lanes >= 0
        bus = jnp.where(valid, tables.lane_bus[jnp.maximum(lanes, 0)], 0)
        earlier = (bus[:, None] == bus[None, :]) & valid[None, :] & (ks[None, :] < ks[:, None])
        rank = jnp.sum(earlier, axis=1).astype(dtype)
        if opts.rate_limit:
            wait = jnp.maximum(c["busy"][bus] - t_new, 0.0) + rank
        else:
            wait = jnp.zeros(K, dtype)
        now = valid & (wait <= _EPS)
        later = valid & (wait > _EPS) & (wait <= queue)
        dropped = valid & (wait > queue)
        # The m-th delayed lane takes the m-th free queue slot (no sort: slots are few, lanes fewer).
        free_slot = ~jnp.isfinite(c["pend_t"])
        free_rank = jnp.where(free_slot, jnp.cumsum(free_slot) - 1, -1)
        m = jnp.where(later, jnp.cumsum(later) - 1, -2)
        match = free_rank[None, :] == m[:, None]  # [K, Pd]
        stored = later & jnp.any(match, axis=1)
        slot = jnp.where(stored, jnp.argmax(match, axis=1), Pd)
        pend_t = c["pend_t"].at[slot].set(t_new + wait, mode="drop")
        pend_lane = c["pend_lane"].at[slot].set(lanes, mode="drop")
        served = now | stored
        busy = c["busy"].at[jnp.where(served, bus, opts.buses)].max(t_new + wait + 1.0, mode="drop")
        p_idx = jnp.argmin(c["pend_t"])
        pend_lane_now = jnp.where(is_pend, c["pend_lane"][p_idx], -1)
        pend_t = jnp.where(is_pend & (jnp.arange(Pd) == p_idx), inf, pend_t)

        # Deliveries: immediate arrivals and the due queued event.
        deliver = jnp.concatenate([jnp.where(now, lanes, -1), pend_lane_now[None]])
        rows = lane_weights[jnp.maximum(deliver, 0)] * (deliver >= 0)[:, None, None].astype(dtype)
        kick = jnp.sum(rows, axis=0)  # [N, 2] in 6-bit weight units
        ie2 = ie2 + nz.gain_exc * kick[:, 0]
        ii2 = ii2 - nz.gain_inh * kick[:, 1]

        # -- the spike: reset, refractory clamp, readout -------------------------------------------------------
        k_old = c["nspk"][n_star]
        if opts.clock_phase:
            period = nz.clock_period[n_star]
            ref_end_star = (jnp.floor(c_star / period) + nz.counter[n_star]) * period
        else:
            ref_end_star = c_star + nz.refractory[n_star]
        u2 = jnp.where(spike & (jnp.arange(N) == n_star), nz.reset, u2)
        ref_end = jnp.where(spike & (jnp.arange(N) == n_star), ref_end_star, c["ref_end"])
        nspk = c["nspk"] + (spike & (jnp.arange(N) == n_star)).astype(jnp.int32)
        stamp = jnp.maximum(c_star + readout_delay + jitter[n_star, jnp.minimum(k_old, J - 1)], 0.0)
        if opts.quantize_timestamps:
            stamp = jnp.floor(stamp)  # the FPGA counts whole cycles
        recorded = spike & tables.recorded[n_star]
        late = recorded & (stamp >= t_end)
        over_budget = recorded & ~late & (k_old >= nz.budget[n_star])
        pop = tables.pop_of[n_star]
        count = c["rec_cnt"][pop]
        keep = recorded & ~late & ~over_budget
        fits = keep & (count < tables.capacity[pop])
        pos = jnp.where(fits, tables.offset[pop] + count, E)
        rec_t = c["rec_t"].at[pos].set(stamp, mode="drop")
        rec_n = c["rec_n"].at[pos].set(tables.index[n_star], mode="drop")
        rec_cnt = c["rec_cnt"].at[pop].add(fits.astype(jnp.int32))
        overflow = c["overflow"].at[pop].set(c["overflow"][pop] | (keep & ~fits))

        counters = c["counters"] + jnp.stack(
            [
                jnp.sum(stored),
                jnp.sum(dropped) + jnp.sum(later & ~stored),
                late,
                spike & ~tables.recorded[n_star],
                over_budget,
            ]
        ).astype(jnp.int32)
        return {
            "t": t_new,
            "it": c["it"] + 1,
            "u": u2,
            "ie": ie2,
            "ii": ii2,
            "ref_end": ref_end,
            "nspk": nspk,
            "p_in": p_in + is_in.astype(jnp.int32),
            "pend_t": pend_t,
            "pend_lane": pend_lane,
            "busy": busy,
            "rec_t": rec_t,
            "rec_n": rec_n,
            "rec_cnt": rec_cnt,
            "overflow": overflow,
            "counters": counters,
            "gap": jnp.minimum(c["gap"], rel_gap),
        }

    zeros = jnp.zeros(N, dtype)
    init = {
        "t": jnp.zeros((), dtype),
        "it": jnp.zeros((), jnp.int32),
        "u": zeros,
        "ie": zeros,
        "ii": zeros,
        "ref_end": jnp.full(N, -jnp.inf, dtype),
        "nspk": jnp.zeros(N, jnp.int32),
        "p_in": jnp.zeros((), jnp.int32),
        "pend_t": jnp.full(Pd, jnp.inf, dtype),
        "pend_lane": jnp.full(Pd, -1, jnp.int32),
        "busy": jnp.full(opts.buses, -jnp.inf, dtype),
        "rec_t": jnp.full(E, jnp.inf, dtype),
        "rec_n": jnp.full(E, -1, jnp.int32),
        "rec_cnt": jnp.zeros(n_pops, jnp.int32),
        "overflow": jnp.zeros(n_pops, bool),
        "counters": jnp.zeros(len(COUNTERS), jnp.int32),
        "gap": jnp.asarray(jnp.inf, dtype),
    }
    out = jax.lax.while_loop(cond, body, init)
    return SampleResult(
        rec_time=out["rec_t"],
        rec_index=out["rec_n"],
        overflow=out["overflow"],
        counters=out["counters"],
        iterations=out["it"],
        limit_hit=out["t"] < t_end,
        gap=out["gap"],
    )


# --------------------------------------------------------------------------- the batch program

_TRACES = [0]  # how often run_batch was traced (all executables together)


def trace_count() -> int:
    """How often the shared batch program has been traced by ``jit`` (a new input shape or size bucket)."""
    return _TRACES[0]


class MockArrays(eqx.Module):
    """One placed network as device arrays, padded to size buckets so that networks share compiled code.

    Padding neurons never fire (threshold ``1e30``), padding lanes are never used, padding contacts and
    weight entries point past the end of their targets (dropped by the scatters).
    """

    neurons: NeuronArrays
    tables: RunTables
    contact_lane: Int[Array, " X"]
    contact_neuron: Int[Array, " X"]
    contact_sign: Int[Array, " X"]
    contact_synapse: Int[Array, " X"]
    input_sources: Int[Array, "I Lmax"]
    record_block: Int[Array, " E"]
    entry_weight: Int[Array, " W"]
    entry_sign: Int[Array, " W"]
    entry_synapse: Int[Array, " W"]
    entry_copy: Float[Array, " W"]
    entry_copies: Float[Array, " W"]
    entry_alone: Bool[Array, " W"]
    entry_scale: Float[Array, " W"]
    base_synapses: Float[Array, " Z"]
    scale: Float[Array, ""]
    tick_model: Float[Array, ""]


class BatchResult(eqx.Module):
    """What :func:`run_batch` returns, per sample: readout sorted per population block, overflow, health."""

    rec_time: Float[Array, "B E"]
    rec_index: Int[Array, "B E"]
    overflow: Bool[Array, "B P"]
    counters: Int[Array, "B C"]
    limit_hit: Bool[Array, " B"]
    gap: Float[Array, " B"]
    saturated: Int[Array, ""]
    lost: Int[Array, ""]


def requantize_flat(arrays: MockArrays, flat_weights: Array, opts: EngineOptions) -> tuple[Array, Array, Array]:
    """Synapse weights from model weights (one flat vector over all projections), inside ``jit``.

    The same rule as the ``quantize`` pass and :func:`~._weights.requantize_host`; returns the flat synapse
    array and the number of saturated and of lost weights (see :mod:`._weights`).
    """
    dtype = arrays.base_synapses.dtype
    real = arrays.entry_weight >= 0
    w = jnp.where(real, flat_weights[jnp.maximum(arrays.entry_weight, 0)], 0.0).astype(dtype)
    x = arrays.entry_scale * w  # scale * the target's weight factor (instantaneous synapses)
    w_max = float(opts.w_max)
    first = real & (arrays.entry_copy == 0)
    if opts.split:
        w_hw = jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)
        mag = jnp.where(arrays.entry_sign == 0, jnp.maximum(w_hw, 0), jnp.maximum(-w_hw, 0))
        saturated = jnp.sum(first & (mag > arrays.entry_copies * w_max))
    else:
        saturated = jnp.sum(first & (arrays.entry_sign == 0) & (jnp.abs(x) > w_max))
        x = jnp.clip(x, -w_max, w_max)
        w_hw = jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)
        mag = jnp.where(arrays.entry_sign == 0, jnp.maximum(w_hw, 0), jnp.maximum(-w_hw, 0))
    # A weight whose sign has no synapse is lost: the (pre, post) pair has synapses of the other sign only.
    other = jnp.where(arrays.entry_sign == 0, w_hw < 0, w_hw > 0)
    lost = jnp.sum(first & arrays.entry_alone & other)
    val = jnp.clip(mag - arrays.entry_copy * w_max, 0, w_max)
    syn = jnp.where(real, arrays.entry_synapse, arrays.base_synapses.shape[0])
    out = arrays.base_synapses.at[syn].set(val, mode="drop")
    return out, saturated.astype(jnp.int32), lost.astype(jnp.int32)


def lane_weights(arrays: MockArrays, synapses: Array) -> Array:
    """``[lanes, neurons, 2]``: the 6-bit weight each lane delivers to each neuron's exc/inh input (no gradient)."""
    synapses = jax.lax.stop_gradient(synapses)
    n_lanes = arrays.tables.lane_bus.shape[0]
    n_neurons = arrays.neurons.a.shape[0]
    return (
        jnp.zeros((n_lanes, n_neurons, 2), synapses.dtype)
        .at[arrays.contact_lane, arrays.contact_neuron, arrays.contact_sign]
        .add(synapses[arrays.contact_synapse], mode="drop")
    )


def sample_keys(key: Array, trial: Array | None, batch: int) -> Array:
    """The per-sample keys of a run: ``split(fold_in(key, trial), batch)`` (no ``trial``: ``split(key, batch)``)."""
    base = key if trial is None else jax.random.fold_in(key, trial)
    return jax.random.split(base, batch)


def noise_tables(key: Array, n_neurons: int, noise: Array, opts: EngineOptions, dtype: Any) -> tuple[Array, Array]:
    """One sample's trial-to-trial draws ``(jitter [N, J] ticks, threshold noise [N, J] LSB)``.

    Column ``k`` is used by a neuron's ``k``-th spike (the last column for later ones). Both engines
    draw exactly this, so the same key gives the same noise whichever engine runs.
    """
    J = opts.noise_slots
    if not opts.noisy:
        zeros = jnp.zeros((n_neurons, J), dtype)
        return zeros, zeros
    k1, k2 = jax.random.split(key)
    jit_tab = noise[0] * jax.random.normal(k1, (n_neurons, J), dtype)
    thr_tab = noise[2] * jax.random.normal(k2, (n_neurons, J), dtype)
    return jit_tab, thr_tab


def run_batch(
    arrays: MockArrays,
    synapses: Float[Array, " Z"],
    flat_weights: Float[Array, " W"],
    ev_time: Float[Array, "B Q"],
    ev_channel: Int[Array, "B Q"],
    t_max: Float[Array, ""],
    key: Array,
    trial: Array | None,
    noise: Float[Array, " 3"],
    opts: EngineOptions,
    requantize: bool,
) -> BatchResult:
    """Run a batch: input spikes (model seconds, global input channel, ``-1`` padding) -> readout and health.

    ``synapses`` are the flat 6-bit synapse weights; with ``requantize`` they are computed from
    ``flat_weights`` instead (parameters traced by the caller). ``noise = (jitter, readout delay)`` in
    ticks and the threshold noise in LSB. The trial-to-trial draws of sample ``b`` use key ``b`` of
    :func:`sample_keys` (``key``, ``trial``).
    """
    return _run_batch(arrays, synapses, flat_weights, ev_time, ev_channel, t_max, key, trial, noise, opts, requantize)


def _run_batch_impl(
    arrays: MockArrays,
    synapses: Array,
    flat_weights: Array,
    ev_time: Array,
    ev_channel: Array,
    t_max: Array,
    key: Array,
    trial: Array | None,
    noise: Array,
    opts: EngineOptions,
    requantize: bool,
) -> BatchResult:
    _TRACES[0] += 1
    keys = sample_keys(key, trial, ev_time.shape[0])
    dtype = arrays.base_synapses.dtype
    if requantize:
        synapses, saturated, lost = requantize_flat(arrays, flat_weights, opts)
    else:
        saturated = lost = jnp.zeros((), jnp.int32)
    lane_w = lane_weights(arrays, synapses)
    n_neurons = arrays.neurons.a.shape[0]
    t_end = t_max / arrays.tick_model
    delay = noise[1]
    n_ch = arrays.input_sources.shape[0]

    def one(t: Array, ch: Array, key: Array) -> SampleResult:
        ok = (ch >= 0) & (ch < n_ch) & (t < t_max) & jnp.isfinite(t) & (t >= 0)
        src = jnp.where(ok[:, None], arrays.input_sources[jnp.clip(ch, 0, n_ch - 1)], -1)
        tick = jnp.floor(t / arrays.tick_model + 0.5)
        et = jnp.where(src >= 0, tick[:, None], jnp.inf).reshape(-1).astype(dtype)
        es = jnp.maximum(src, 0).reshape(-1).astype(jnp.int32)
        order = jnp.argsort(et, stable=True)
        jit_tab, thr_tab = noise_tables(key, n_neurons, noise, opts, dtype)
        return simulate(
            arrays.neurons, lane_w, arrays.tables, et[order], es[order], t_end, jit_tab, thr_tab, delay, opts
        )

    res = jax.vmap(one)(ev_time, ev_channel, keys)
    # Sort each population's readout block by time (padding, +inf, last); spikes with the same timestamp
    # stay in the order the FPGA received them (a stable sort), as the layer-parallel engine orders them.
    block = jnp.broadcast_to(arrays.record_block, res.rec_time.shape)
    _, rec_t, rec_n = jax.lax.sort((block, res.rec_time, res.rec_index), dimension=1, num_keys=2, is_stable=True)
    return BatchResult(
        rec_time=rec_t,
        rec_index=jnp.where(jnp.isfinite(rec_t), rec_n, -1),
        overflow=res.overflow,
        counters=res.counters,
        limit_hit=res.limit_hit,
        gap=res.gap,
        saturated=saturated,
        lost=lost,
    )


_run_batch = jax.jit(_run_batch_impl, static_argnames=("opts", "requantize"))
