"""The layer-parallel engine: a feed-forward, single-spike configuration run one layer at a time, in closed form.

The general engine (:mod:`._engine`) advances every neuron from event to event in one loop. When the
configuration allows it, the same physics can be computed layer by layer instead, each layer for all its
neurons and all samples at once. :func:`layered_plan` decides this from the ``HardwareConfig``'s event
tables alone; :func:`run_layered` computes what :func:`._engine.run_batch` computes, returning the same
:class:`~._engine.BatchResult`.

**When.** (1) Feed-forward: the neuron-to-neuron contacts (structure, not weights, so re-quantized
weights never change the decision) form no cycle; a neuron's *depth* is 1 + the largest depth of the
neurons reaching it (external inputs have depth 0). (2) Single-spike: every simulated neuron's refractory
period, as its counter and clock realise it, lasts at least the run (checked per run against ``t_max``):
after its first spike a neuron is clamped to the end, so it spikes at most once. (3) With the event-rate
limit, every PADI bus carries only events that are known before any neuron it delivers to is computed:
the deepest source on the bus is shallower than the shallowest target reached through it (its queue
then never couples a layer to itself), and the buses in use can never fill the pending pool of the
general engine (``used buses * (bus_queue + 1) <= buses * bus_queue``), so no event is dropped for want
of a slot. Anything else runs on the general engine; ``MockExecutable.report()`` names the engine and why.

**How**, per depth ``d = 1, 2, ...`` (all samples and neurons of the depth at once; event lists are
``[events, batch]``, per-interval arrays ``[intervals, batch, neurons]``):

1. *Bus stage.* Every bus whose deepest source has depth ``d - 1`` is simulated: its events (input
   releases on the 8 ns grid, spikes of shallower neurons at their exact times) in the order the general
   engine processes them (time, then spikes before inputs, neurons by index, inputs in release order).
   A lane is a (source, bus) pair, so every bus is a FIFO of whole events: one ``lax.scan`` over the
   queue positions advances all buses at once with the general engine's rule (one event per bus per
   tick, ``bus_queue`` waiting, later ones dropped) and its arithmetic.
2. *Layer sweep.* The deliveries reaching depth ``d`` are ordered by time (pairwise ranks); the
   general engine's closed-form evolution (``exp``/``expm1``) over every interval between deliveries is
   computed at once, then a ``lax.scan`` of multiply-adds carries ``(u, I_exc, I_inh)`` through the
   deliveries, each adding its ``gain * weight``. Each interval is tested for a threshold crossing:
   exactly at its end (``u >= theta``), and inside by a rigorous upper bound of ``u`` -- the inhibitory
   input replaced by ``r`` times an input with the excitatory time constant, ``r = min(1, K_i(h) /
   K_e(h))`` (the ratio of the two kernels is monotone), which leaves a two-exponential whose maximum
   has a closed form. With equal synaptic time constants the bound *is* the maximum.
3. *Exact crossing.* In the first candidate interval of each neuron the trajectory is analysed exactly:
   ``e^{a s} du/ds / a`` is ``G(s) = G(0) - b_e I_e psi(a - b_e, s) - b_i I_i psi(a - b_i, s)``, whose
   derivative has at most one zero (in closed form), so ``u`` has at most two extrema, each found by
   safeguarded Halley steps in a bracket where ``G`` is monotone (started where the bound peaks); the
   first monotone piece of ``u`` that ends at or above threshold holds the crossing, found by
   safeguarded Halley steps on the exact trajectory (started from the parabola at an extremum next to
   it: a crossing close to a maximum is a near double root). A candidate that does not cross (possible
   where the bound is not tight) hands on to the neuron's next candidate, 64 neurons at a time.
4. The spikes of depth ``d`` are sources for the next bus stage.

Readout, timestamps (``floor(c + readout_delay + jitter)``), the single event the general engine handles
at exactly ``t_end``, late/unrecorded/over-budget counts and the readout buffers are the general
engine's, as are the trial-to-trial draws: the same keys and tables, of which a neuron's only spike uses
column 0 (drawn alone here, :func:`_normal_column`). The grazing value is the smallest
``|u_max - theta| / theta`` over the maxima of ``u`` before each neuron's spike (interior maxima, exact
where a candidate was analysed, else from the upper bound, so never larger than the true distance; and
maxima at an inhibitory delivery). A large batch runs in chunks of samples (``_CHUNK_BYTES``).

**Modules.** ``_layered_plan`` (the decision and the per-layer tables, :func:`layered_plan`),
``_layered_kernels`` (input releases, bus stages, layer sweeps), ``_layered_crossing`` (the closed-form
evolution and the exact crossing search); this one runs them (:func:`run_layered`): the first-spike
draws, the chunks, the layers in turn, the events at ``t_end`` and the readout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._engine import (
    BatchResult,
    EngineOptions,
    MockArrays,
    lane_weights,
    noise_tables,
    requantize_flat,
    sample_keys,
)
from ._layered_kernels import _PAIRWISE_MAX, bus_stage, input_releases, layer_sweep, level_rows
from ._layered_plan import LayeredPlan, LayeredTables, layered_plan

try:  # the threefry hash itself, to draw single columns of a noise table (see _normal_column)
    from jax.extend.random import threefry2x32_p
except ImportError:  # pragma: no cover - older/newer JAX: draw whole tables
    threefry2x32_p = None  # type: ignore[assignment]

__all__ = ["LayeredPlan", "LayeredTables", "layered_plan", "run_layered"]


def _normal_column(key: Array, n: int, J: int, dtype: Any) -> Array:
    """``jax.random.normal(key, (n, J), dtype)[:, 0]`` without drawing the other columns.

    With partitionable threefry (JAX's default) element ``(i, j)`` of a draw depends only on its flat
    index ``i * J + j``; this draws the indices ``i * J`` and transforms them as ``jax.random.normal``
    does (its uniform on ``(-1, 1)``, then ``sqrt(2) erfinv``). Equal to the full draw (tested; a scale
    applied to it may round differently in the last bit, as in any two programs XLA fuses differently).
    """
    k1, k2 = key[0], key[1]
    lo = jnp.arange(n, dtype=jnp.uint32) * jnp.uint32(J)
    b1, b2 = threefry2x32_p.bind(k1, k2, jnp.zeros(n, jnp.uint32), lo)
    finfo = jnp.finfo(dtype)
    nbits, nmant = finfo.bits, finfo.nmant
    if nbits == 32:
        bits, ut = b1 ^ b2, jnp.uint32
    else:
        ut = jnp.uint64
        bits = (lax.convert_element_type(b1, ut) << ut(32)) | lax.convert_element_type(b2, ut)
    one_bits = jnp.asarray(np.array(1.0, dtype).view(np.dtype(ut)), ut)
    floats = lax.bitcast_convert_type(lax.shift_right_logical(bits, ut(nbits - nmant)) | one_bits, dtype) - 1.0
    low = lax.convert_element_type(np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype), dtype)
    high = lax.convert_element_type(np.array(1.0, dtype), dtype)
    u = lax.max(low, floats * (high - low) + low)
    return lax.mul(np.array(np.sqrt(2), dtype), lax.erf_inv(u))


def _first_draws(keys: Array, n: int, noise: Array, opts: EngineOptions, dtype: Any) -> tuple[Array, Array]:
    """``[B, n]``: column 0 of :func:`._engine.noise_tables` of every sample key (a neuron's first spike's draws)."""
    if not opts.noisy:
        zeros = jnp.zeros((keys.shape[0], n), dtype)
        return zeros, zeros
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    # jax.config's flags are attributes it adds at run time.
    impl = str(jax.random.key_impl(keys)) if typed else str(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]
    if not (threefry2x32_p is not None and jax.config.jax_threefry_partitionable and "threefry" in impl):  # type: ignore[attr-defined]
        jit_tab, thr_tab = jax.vmap(lambda k: noise_tables(k, n, noise, opts, dtype))(keys)
        return jit_tab[:, :, 0], thr_tab[:, :, 0]
    raw = jax.random.key_data(keys) if typed else keys
    J = opts.noise_slots

    def one(k: Array) -> tuple[Array, Array]:
        k1, k2 = jax.random.split(k)  # as noise_tables splits
        return noise[0] * _normal_column(k1, n, J, dtype), noise[2] * _normal_column(k2, n, J, dtype)

    return jax.vmap(one)(raw)


# --------------------------------------------------------------------------- the run


def run_layered(
    arrays: MockArrays,
    lt: LayeredTables,
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
    segments: tuple[tuple[int, int, int, int], ...] | None = None,
) -> BatchResult:
    """:func:`._engine.run_batch` for a configuration :func:`layered_plan` accepted (same arguments and result).

    ``segments`` (optional, static): which input channels the event columns hold, ``(first column, end
    column, first channel, end channel)`` per input population, so that each layer's sweep leaves out the
    events that cannot reach it (:func:`._layered_kernels.level_rows`).
    """
    return _run_layered(
        arrays, lt, synapses, flat_weights, ev_time, ev_channel, t_max, key, trial, noise, opts, requantize, segments
    )


def _run_layered_impl(
    arrays: MockArrays,
    lt: LayeredTables,
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
    segments: tuple[tuple[int, int, int, int], ...] | None = None,
) -> BatchResult:
    dtype = arrays.base_synapses.dtype
    keys = sample_keys(key, trial, ev_time.shape[0])
    if requantize:
        synapses, saturated, lost = requantize_flat(arrays, flat_weights, opts)
    else:
        saturated = lost = jnp.zeros((), jnp.int32)
    lane_w = lane_weights(arrays, synapses)
    n_pad = arrays.neurons.a.shape[0]
    jit0, thr0 = _first_draws(keys, n_pad, noise, opts, dtype)  # a neuron's first (only) spike's draws
    ev_time = lax.stop_gradient(ev_time)
    B = ev_time.shape[0]
    # Samples are independent: a batch whose working arrays would be large runs in chunks, one after another.
    chunk = B
    rows = [level_rows(lt, lv, ev_time.shape[1], segments) for lv in lt.levels]
    n_events = ev_time.shape[1] * lt.in_sources.shape[1]
    while chunk > 8 and chunk * _bytes_per_sample(lt, n_events, n_pad, rows) > _CHUNK_BYTES:
        chunk //= 2
    run: Callable[[tuple[Array, Array, Array, Array]], tuple[Array, ...]]
    run = lambda x: _simulate(arrays, lt, lane_w, *x, t_max, noise, opts, rows)  # noqa: E731
    args = (ev_time, ev_channel, jit0, thr0)
    if chunk == B:
        out = run(args)
    else:
        split = lambda x: x.reshape(B // chunk, chunk, *x.shape[1:])  # noqa: E731
        out = lax.map(run, tuple(split(x) for x in args))
        out = tuple(x.reshape(B, *x.shape[2:]) for x in out)
    rec_t, rec_n, overflow, counters, gap = out
    return BatchResult(
        rec_time=rec_t,
        rec_index=rec_n,
        overflow=overflow,
        counters=counters,
        limit_hit=jnp.zeros((B,), bool),
        gap=gap,
        saturated=saturated,
        lost=lost,
    )


_CHUNK_BYTES = 256 << 20  # working arrays of one chunk of samples


def _bytes_per_sample(
    lt: LayeredTables, n_events: int, n_pad: int, rows: list[dict[int, np.ndarray | None]] | None = None
) -> int:
    """A generous estimate of one sample's working arrays (per-interval arrays, orderings, readout)."""

    def ordering(m: int) -> int:  # pairwise up to _PAIRWISE_MAX entries, a sort beyond
        return m * m if m <= _PAIRWISE_MAX else 16 * m

    items = []
    for st in lt.stages:
        events = (n_events if st.has_inputs else 0) + (st.nrn.shape[0] if st.has_neurons else 0)
        items.append(events * st.nrn_lanes.shape[1])
    total = n_pad * n_pad
    for s in items:
        total += ordering(s)
    for i, lv in enumerate(lt.levels):
        kept = rows[i] if rows is not None else {}
        m = 0
        for s in lv.stages:
            r = kept.get(s)
            m += items[s] if r is None else len(r)
        total += 24 * (m + 1) * lv.neurons.shape[0] + ordering(m)
    return 4 * total


def _simulate(
    arrays: MockArrays,
    lt: LayeredTables,
    lane_w: Array,
    ev_time: Array,
    ev_channel: Array,
    jit0: Array,
    thr0: Array,
    t_max: Array,
    noise: Array,
    opts: EngineOptions,
    rows: list[dict[int, np.ndarray | None]] | None = None,
) -> tuple[Array, Array, Array, Array, Array]:
    """One batch (or chunk of it): readout, overflow, counters and grazing value per sample."""
    dtype = lane_w.dtype
    nz = arrays.neurons
    tb = arrays.tables
    n_pad = nz.a.shape[0]
    B = ev_time.shape[0]
    t_end = (t_max / arrays.tick_model).astype(dtype)
    theta = nz.theta[None, :] + thr0

    in_t, in_src = input_releases(lt, ev_time, ev_channel, t_max, arrays.tick_model, dtype)

    crossing = jnp.full((B, n_pad), jnp.inf, dtype)
    crossing_t = jnp.full((n_pad, B), jnp.inf, dtype)  # the same, neuron major, for the bus stages
    gap = jnp.full((B,), jnp.inf, dtype)
    stage_out: dict[int, tuple[Array, ...]] = {}

    n_stages = len(lt.stages)
    if n_stages:
        stage_out[0] = bus_stage(lt.stages[0], lt, crossing_t, in_t, in_src, t_end, n_pad, opts)
    delay = noise[1]
    stamp = jnp.full((B, n_pad), jnp.inf, dtype)
    for d, lv in enumerate(lt.levels, start=1):
        c, g = layer_sweep(lv, nz, theta, lane_w, stage_out, t_end, None if rows is None else rows[d - 1])
        at = jnp.where(lv.real, lv.neurons, n_pad)  # padding: dropped
        crossing = crossing.at[:, at].set(c, mode="drop")
        crossing_t = crossing_t.at[at].set(c.T, mode="drop")
        # The FPGA's timestamp (scattered per layer, so that the readout below reads it, not its noise draw).
        st = jnp.maximum(c + delay + jit0[:, lv.neurons], 0.0)
        stamp = stamp.at[:, at].set(jnp.floor(st) if opts.quantize_timestamps else st, mode="drop")
        gap = jnp.minimum(gap, g)
        if d < n_stages:
            stage_out[d] = bus_stage(lt.stages[d], lt, crossing_t, in_t, in_src, t_end, n_pad, opts)

    # -- events at the very end: the general engine handles one thing at t_end, then stops --------------------
    idx = jnp.arange(n_pad, dtype=jnp.int32)
    at_end = crossing == t_end
    end_spike = jnp.any(at_end, axis=1)
    first_spike = jnp.argmax(at_end, axis=1).astype(jnp.int32)  # lowest index among spikes at t_end
    first_in = jnp.argmax(in_t == t_end, axis=0).astype(jnp.int32)  # [B]
    spiked = (crossing < t_end) | (at_end & (idx[None, :] == first_spike[:, None]))

    delayed = jnp.zeros((B,), jnp.int32)
    dropped = jnp.zeros((B,), jnp.int32)
    for ts, ids, _ls, _d, later, drop in stage_out.values():
        chosen = (ts == t_end) & jnp.where(
            ids < n_pad, end_spike & (ids == first_spike), ~end_spike & (ids - n_pad == first_in)
        )  # [E, B]
        counted = (ts < t_end) | chosen
        delayed = delayed + jnp.sum(later & counted, axis=0, dtype=jnp.int32)
        dropped = dropped + jnp.sum(drop & counted, axis=0, dtype=jnp.int32)

    # -- readout: timestamps, budgets, buffers ----------------------------------------------------------------
    recorded = spiked & tb.recorded[None, :]
    late = recorded & (stamp >= t_end)
    over = recorded & ~late & (nz.budget[None, :] <= 0)  # the first spike is beyond a budget of 0
    keep = recorded & ~late & ~over
    # Every population's buffer holds at least one spike per neuron (checked by the plan), so none overflows.
    # Output order: per buffer by timestamp, equal timestamps in the order the FPGA received them, i.e.
    # by crossing time, then neuron index (the general engine's order of processing).
    pop = tb.pop_of
    key_p = jnp.where(keep, pop[None, :], -1)
    ahead = (key_p[:, None, :] == key_p[:, :, None]) & (
        (stamp[:, None, :] < stamp[:, :, None])
        | (
            (stamp[:, None, :] == stamp[:, :, None])
            & (
                (crossing[:, None, :] < crossing[:, :, None])
                | ((crossing[:, None, :] == crossing[:, :, None]) & (idx[None, :] < idx[:, None]))
            )
        )
    )
    pos = jnp.sum(ahead, axis=-1, dtype=jnp.int32)
    E = opts.record_total
    n_pops = tb.capacity.shape[0]
    overflow = jnp.zeros((B, n_pops), bool)
    slot = jnp.where(keep, tb.offset[pop][None, :] + pos, E)
    samples = jnp.arange(B)[:, None]
    rec_t = jnp.full((B, E), jnp.inf, dtype).at[samples, slot].set(stamp, mode="drop")
    rec_n = jnp.full((B, E), -1, jnp.int32).at[samples, slot].set(jnp.broadcast_to(tb.index, (B, n_pad)), mode="drop")
    counters = jnp.stack(
        [
            delayed,
            dropped,
            jnp.sum(late, axis=1, dtype=jnp.int32),
            jnp.sum(spiked & ~tb.recorded[None, :], axis=1, dtype=jnp.int32),
            jnp.sum(over, axis=1, dtype=jnp.int32),
        ],
        axis=1,
    )
    return rec_t, rec_n, overflow, counters, gap


_run_layered = jax.jit(_run_layered_impl, static_argnames=("opts", "requantize", "segments"))
