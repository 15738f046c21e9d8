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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._arrays import bucket
from ._engine import (
    _EPS,
    BatchResult,
    EngineOptions,
    MockArrays,
    lane_weights,
    noise_tables,
    requantize_flat,
    sample_keys,
)
from ._routing import EventTables

try:  # the threefry hash itself, to draw single columns of a noise table (see _normal_column)
    from jax.extend.random import threefry2x32_p
except ImportError:  # pragma: no cover - older/newer JAX: draw whole tables
    threefry2x32_p = None  # type: ignore[assignment]

__all__ = ["LayeredPlan", "LayeredTables", "layered_plan", "run_layered"]

# Safeguarded Halley steps (extremum of u, crossing) from the starts chosen in ``_crossing``; measured on
# the Yin-Yang network, (3, 3) already agree with 16/24 steps to 1e-9 ticks in float64.
_STEPS = {4: (3, 4), 8: (4, 6)}  # by dtype size
_PAIRWISE_MAX = 512  # orderings of up to this many entries by pairwise comparison, longer ones by a sort
_ALL_AT_ONCE = 256  # layers of at most this many neurons x samples check their candidates in one loop


class StageTables(eqx.Module):
    """The events of one bus stage: lanes (on this stage's buses) of external sources and of neurons.

    A lane is a (source, bus) pair, so a source has at most one lane per bus and every bus is a FIFO of
    whole events.
    """

    in_lanes: Array  # [n_ext, K] lane ids of each external source on this stage's buses (-1 padding)
    nrn: Array  # [Ns] neuron ids (ascending; padding 0, see nrn_real)
    nrn_real: Array  # [Ns]
    nrn_lanes: Array  # [Ns, K]
    has_inputs: bool = eqx.field(static=True)
    has_neurons: bool = eqx.field(static=True)
    bus_load: tuple[tuple[int, bool], ...] = eqx.field(static=True)  # per bus: neuron sources, any external

    def queue_length(self, n_inputs: int) -> int:
        """The most lane events one bus of this stage can see in a run with ``n_inputs`` input events."""
        return max(1, max((n + (n_inputs if ext else 0) for n, ext in self.bus_load), default=1))


class LevelTables(eqx.Module):
    """The neurons of one depth and the bus stages that deliver to them."""

    neurons: Array  # [NL] neuron ids (padding 0, see real)
    real: Array  # [NL]
    stages: tuple[int, ...] = eqx.field(static=True)


class LayeredTables(eqx.Module):
    """Device tables of the layer-parallel engine (one placement)."""

    in_sources: Array  # [channels, Lw] external source index per input channel (-1 padding)
    lane_bus: Array  # [lanes] bus (crossbar output) of every lane; the virtual bus of its stage without rate limit
    stages: tuple[StageTables, ...]
    levels: tuple[LevelTables, ...]
    n_buses: int = eqx.field(static=True)


@dataclass(frozen=True)
class LayeredPlan:
    """Whether a configuration runs on the layer-parallel engine, and its tables if so.

    ``reason`` says why not (``None``: it does, for runs not longer than ``max_ticks``, the shortest
    refractory period in FPGA ticks). ``depths``/``stages`` describe the plan for the report.
    """

    reason: str | None
    max_ticks: float = 0.0
    tables: LayeredTables | None = None
    depths: tuple[int, ...] = ()
    stages: int = 0

    def text(self) -> str:
        """One line for the report."""
        if self.reason is not None:
            return self.reason
        sizes = "+".join(str(n) for n in self.depths)
        return f"{len(self.depths)} layer(s) of {sizes} neurons, {self.stages} bus stage(s)"


def layered_plan(
    tables: EventTables, neurons: dict[str, np.ndarray], opts: EngineOptions, pop_of: np.ndarray, capacity: np.ndarray
) -> LayeredPlan:
    """Decide from the event tables whether the layer-parallel engine computes this configuration exactly.

    ``pop_of[n]`` is the readout buffer of simulated neuron ``n``, ``capacity[p]`` the size of buffer ``p``.
    """
    N = tables.n_neurons
    if N == 0:
        return LayeredPlan("no neuron fires")
    if np.any(np.bincount(np.asarray(pop_of[:N], np.int64), minlength=len(capacity)) > np.asarray(capacity)):
        return LayeredPlan("a readout buffer holds fewer spikes than its population has neurons")
    lane_src = np.asarray(tables.lane_source, np.int64)
    c_src = lane_src[tables.contact_lane] if len(tables.contact_lane) else np.zeros(0, np.int64)
    c_tgt = np.asarray(tables.contact_neuron, np.int64)

    # Depths (longest path from the inputs) by Kahn's algorithm; a cycle means recurrence.
    nn = c_src < N
    pairs = sorted(set(zip(c_src[nn].tolist(), c_tgt[nn].tolist())))
    succ: list[list[int]] = [[] for _ in range(N)]
    indeg = np.zeros(N, np.int64)
    for s, t in pairs:
        succ[s].append(t)
        indeg[t] += 1
    depth = np.ones(N, np.int64)
    ready = [n for n in range(N) if indeg[n] == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for t in succ[n]:
            depth[t] = max(depth[t], depth[n] + 1)
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    if seen < N:
        return LayeredPlan("recurrent: some neurons' events reach themselves")

    # Single spike: the refractory period as the counter realises it must outlast the run (checked per run).
    counter = np.asarray(neurons["counter"], np.float64)
    period = np.asarray(neurons["clock_period"], np.float64)
    refractory = np.asarray(neurons["refractory"], np.float64)
    # With the clock phase the period ends at (floor(c / period) + counter) * period >= counter * period.
    shortest = float(np.min(counter * period if opts.clock_phase else refractory))

    # Stages: the bus of every lane is simulated once all its sources are known.
    lane_bus = np.asarray(tables.lane_bus, np.int64)
    src_depth = np.where(lane_src < N, depth[np.minimum(lane_src, N - 1)], 0)
    n_lanes = len(lane_bus)
    if opts.rate_limit:
        used = sorted(set(lane_bus.tolist()))
        pending = len(used) * (opts.bus_queue + 1) if opts.bus_queue > 0 else 0
        if pending > max(1, opts.buses * opts.bus_queue):
            return LayeredPlan(
                f"{len(used)} PADI buses in use could together hold more waiting events than the general "
                f"engine's {opts.buses * opts.bus_queue} queue slots"
            )
        bus_stage = {b: int(src_depth[lane_bus == b].max()) for b in used}
        for k in range(len(c_tgt)):
            b = int(lane_bus[tables.contact_lane[k]])
            if bus_stage[b] >= depth[c_tgt[k]]:
                return LayeredPlan(
                    f"PADI bus {b} carries events of depth {bus_stage[b]} to neurons of depth {int(depth[c_tgt[k]])}: "
                    "its queue couples a layer to itself"
                )
        lane_stage = np.array([bus_stage[int(b)] for b in lane_bus], np.int64)
        eff_bus = lane_bus
        n_buses = opts.buses
    else:
        # No rate limit: a bus never delays, so every lane is delivered with its source (one virtual bus).
        lane_stage = src_depth.astype(np.int64)
        eff_bus = np.zeros(n_lanes, np.int64)
        n_buses = 1
    n_stages = int(lane_stage.max()) + 1 if n_lanes else 0
    n_depths = int(depth.max())

    # Lanes of every source, per stage, in the source's own lane order (the general engine's rank order).
    src_lanes = [[int(x) for x in row if x >= 0] for row in tables.source_lanes]
    n_ext = tables.n_sources - N
    stages = []
    for s in range(n_stages):
        per_src = [[lane for lane in lanes if lane_stage[lane] == s] for lanes in src_lanes]
        K = max(1, max((len(x) for x in per_src), default=0))
        ext = per_src[N:]
        in_lanes = np.full((max(1, n_ext), K), -1, np.int64)
        for e, lanes in enumerate(ext):
            in_lanes[e, : len(lanes)] = lanes
        ids = [n for n in range(N) if per_src[n]]
        ns = bucket(len(ids), 8)
        nrn = np.zeros(ns, np.int64)
        real = np.zeros(ns, bool)
        nrn_lanes = np.full((ns, K), -1, np.int64)
        for i, n in enumerate(ids):
            nrn[i], real[i] = n, True
            nrn_lanes[i, : len(per_src[n])] = per_src[n]
        load = []
        for b in sorted({int(eff_bus[lane]) for lanes in per_src for lane in lanes}):
            on = [any(eff_bus[lane] == b for lane in lanes) for lanes in per_src]
            load.append((bucket(sum(on[:N]), 8), any(on[N:])))
        stages.append(
            StageTables(
                in_lanes=jnp.asarray(in_lanes.astype(np.int32)),
                nrn=jnp.asarray(nrn.astype(np.int32)),
                nrn_real=jnp.asarray(real),
                nrn_lanes=jnp.asarray(nrn_lanes.astype(np.int32)),
                has_inputs=any(len(x) for x in ext),
                has_neurons=bool(ids),
                bus_load=tuple(load),
            )
        )

    levels = []
    sizes = []
    for d in range(1, n_depths + 1):
        level_ids = np.nonzero(depth == d)[0]
        sizes.append(len(level_ids))
        nl = bucket(len(level_ids), 8)
        idx = np.zeros(nl, np.int64)
        idx[: len(level_ids)] = level_ids
        real = np.zeros(nl, bool)
        real[: len(level_ids)] = True
        into = np.isin(c_tgt, level_ids)
        feeding = tuple(sorted(set(lane_stage[tables.contact_lane[into]].tolist()))) if into.any() else ()
        levels.append(LevelTables(neurons=jnp.asarray(idx.astype(np.int32)), real=jnp.asarray(real), stages=feeding))

    # Input channels (global index as the executable numbers them): their external sources.
    rows = [r for pop in tables.input_sources for r in tables.input_sources[pop]]
    width = max(1, max((int(np.sum(r >= 0)) for r in rows), default=0))
    in_sources = np.full((max(1, len(rows)), width), -1, np.int64)
    for i, r in enumerate(rows):
        r = r[r >= 0]
        in_sources[i, : len(r)] = r - N
    lt = LayeredTables(
        in_sources=jnp.asarray(in_sources.astype(np.int32)),
        lane_bus=jnp.asarray(np.asarray(eff_bus, np.int64).astype(np.int32)),
        stages=tuple(stages),
        levels=tuple(levels),
        n_buses=n_buses,
    )
    return LayeredPlan(None, shortest, lt, tuple(sizes), n_stages)


# --------------------------------------------------------------------------- device helpers


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


def _take(x: Array, perm: Array) -> Array:
    """``x[perm[i, b], b, ...]``."""
    idx = perm.reshape(perm.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=0)


def _phi(d: Array, s: Array) -> Array:
    """``(1 - e^{-d s}) / d`` (``= s`` at ``d = 0``), as the general engine evaluates it."""
    safe = jnp.where(d == 0, 1.0, d)
    return jnp.where(d == 0, s, -jnp.expm1(-d * s) / safe)


def _psi(d: Array, s: Array) -> Array:
    """``(e^{d s} - 1) / d`` (``= s`` at ``d = 0``)."""
    safe = jnp.where(d == 0, 1.0, d)
    return jnp.where(d == 0, s, jnp.expm1(d * s) / safe)


def _evolve(u: Array, ie: Array, ii: Array, s: Array, a: Array, be: Array, bi: Array) -> tuple[Array, Array, Array]:
    """State after ``s`` ticks without events (the general engine's formula)."""
    ee = jnp.exp(-be * s)
    ei = jnp.exp(-bi * s)
    em = jnp.exp(-a * s)
    return u * em + a * (ie * ee * _phi(a - be, s) + ii * ei * _phi(a - bi, s)), ie * ee, ii * ei


def _halley(f: Any, lo: Array, hi: Array, f_lo: Array, f_hi: Array, s: Array, steps: int) -> Array:
    """A root of ``f`` (returning value, slope and curvature) in ``[lo, hi]``, where ``f`` changes sign once.

    Starts from ``s`` (or the secant point where ``s`` lies outside), keeps the bracket, and takes a Halley
    step (cubic convergence) where it stays inside, else bisects.
    """
    lo_pos = f_lo > 0
    a, b = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    denom = f_hi - f_lo
    secant = jnp.where(denom != 0, lo - f_lo * (hi - lo) / jnp.where(denom != 0, denom, 1.0), 0.5 * (lo + hi))
    s = jnp.where((s > a) & (s < b), s, jnp.clip(secant, a, b))

    def one(_: int, c: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        s, lo, hi = c
        fs, d1, d2 = f(s)
        lo_side = (fs > 0) == lo_pos
        lo = jnp.where(lo_side, s, lo)
        hi = jnp.where(lo_side, hi, s)
        den = 2 * d1 * d1 - fs * d2
        step = s - 2 * fs * d1 / jnp.where(den != 0, den, 1.0)
        inside = (den != 0) & (step >= jnp.minimum(lo, hi)) & (step <= jnp.maximum(lo, hi))  # closed: converged stays
        return jnp.where(fs == 0, s, jnp.where(inside, step, 0.5 * (lo + hi))), lo, hi

    return lax.fori_loop(0, steps, one, (s, lo, hi))[0]  # a loop, not unrolled: far less to compile


def _crossing(
    u0: Array,
    ie0: Array,
    ii0: Array,
    u1: Array,
    h: Array,
    guess: Array,
    th: Array,
    a: Array,
    be: Array,
    bi: Array,
    steps: tuple[int, int] = (4, 6),
) -> tuple[Array, Array, Array]:
    """Exact first crossing of ``theta`` within ``[0, h]`` from ``(u0, ie0, ii0)``; ``u1`` is ``u(h)``.

    ``guess`` is an estimate of the first extremum (ignored when outside ``(0, h)``). Returns ``(crosses,
    s, umax)``: whether ``u`` reaches ``theta``, when, and the highest interior maximum of ``u`` in the
    interval (``-inf`` if none), for the grazing value.
    """
    al, bt = a - be, a - bi
    g0 = ie0 + ii0 - u0  # G(0) = u'(0) / a

    def G(s: Array) -> tuple[Array, Array, Array]:
        """``e^{a s} u'(s) / a`` and its first two derivatives (``e^{x s} = 1 + x psi(x, s)``)."""
        pe, pi = _psi(al, s), _psi(bt, s)
        xe, xi = -be * ie0 * (1 + al * pe), -bi * ii0 * (1 + bt * pi)
        return g0 - be * ie0 * pe - bi * ii0 * pi, xe + xi, al * xe + bt * xi

    def U(s: Array) -> tuple[Array, Array, Array]:
        us, ies, iis = _evolve(u0, ie0, ii0, s, a, be, bi)
        d1 = a * (ies + iis - us)
        return us - th, d1, -a * d1 - a * (be * ies + bi * iis)

    zero = jnp.zeros_like(u0)
    # G' = 0 at most once: b_e I_e e^{al s} = -b_i I_i e^{bt s}; G is monotone on either side.
    has_c = (ie0 > 0) & (ii0 < 0) & (bi != be)
    ratio = jnp.where(has_c, -bi * ii0 / jnp.where(has_c, be * ie0, 1.0), 1.0)
    sc = jnp.log(ratio) / jnp.where(has_c, bi - be, 1.0)
    sc = jnp.where(has_c & (sc > 0) & (sc < h), sc, h)
    gc, gh = G(jnp.stack([sc, h]))[0]
    z1_ok = (g0 > 0) != (gc > 0)
    z2_ok = (sc < h) & ((gc > 0) != (gh > 0))
    # Both extrema (where they exist) in one bracketed search.
    lo, hi = jnp.stack([zero, sc]), jnp.stack([sc, h])
    starts = jnp.stack([guess, jnp.full_like(guess, -1.0)])  # the second one from the secant
    z1, z2 = _halley(G, lo, hi, jnp.stack([g0, gc]), jnp.stack([gc, gh]), starts, steps[0])
    # u is monotone between consecutive extrema: pieces [0, p1], [p1, p2], [p2, h].
    p1 = jnp.where(z1_ok, z1, jnp.where(z2_ok, z2, h))
    p2 = jnp.where(z1_ok & z2_ok, z2, h)
    inner = jnp.stack([p1, p2]) < h
    fp, _, cp = U(jnp.stack([p1, p2]))
    up1, up2 = jnp.where(inner, fp + th, u1)
    cp1, cp2 = jnp.where(inner, cp, 0.0)  # curvature at the extrema
    start = u0 >= th
    in1 = up1 >= th
    in2 = ~in1 & (up2 >= th)
    in3 = ~in1 & ~in2 & (u1 >= th)
    crosses = start | in1 | in2 | in3
    lo = jnp.where(in1, zero, jnp.where(in2, p1, p2))
    hi = jnp.where(in1, p1, jnp.where(in2, p2, h))
    f_lo = jnp.where(in1, u0, jnp.where(in2, up1, up2)) - th
    f_hi = jnp.where(in1, up1, jnp.where(in2, up2, u1)) - th
    # Start next to an extremum from its parabola (a crossing close to a maximum or a minimum is a near
    # double root, where Newton-type steps from afar crawl); otherwise from the secant.
    c_lo = jnp.where(in2, cp1, jnp.where(in3, cp2, 0.0))
    c_hi = jnp.where(in1, cp1, jnp.where(in2, cp2, 0.0))
    near_max = c_hi < 0
    near_min = ~near_max & (c_lo > 0)
    s0 = jnp.where(
        near_max,
        hi - jnp.sqrt(jnp.maximum(2 * f_hi / jnp.where(near_max, -c_hi, 1.0), 0.0)),
        jnp.where(near_min, lo + jnp.sqrt(jnp.maximum(-2 * f_lo / jnp.where(near_min, c_lo, 1.0), 0.0)), -1.0),
    )
    s = _halley(U, lo, hi, f_lo, f_hi, s0, steps[1])
    s = jnp.where(start, zero, s)
    # Interior maxima: where G turns from positive to negative.
    m1 = jnp.where(z1_ok & (g0 > 0), up1, -jnp.inf)
    m2 = jnp.where(z1_ok & z2_ok & (gc > 0), up2, jnp.where(~z1_ok & z2_ok & (gc > 0), up1, -jnp.inf))
    return crosses, s, jnp.maximum(m1, m2)


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
) -> BatchResult:
    """:func:`._engine.run_batch` for a configuration :func:`layered_plan` accepted (same arguments and result)."""
    return _run_layered(
        arrays, lt, synapses, flat_weights, ev_time, ev_channel, t_max, key, trial, noise, opts, requantize
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
    n_events = ev_time.shape[1] * lt.in_sources.shape[1]
    while chunk > 8 and chunk * _bytes_per_sample(lt, n_events, n_pad) > _CHUNK_BYTES:
        chunk //= 2
    run: Callable[[tuple[Array, Array, Array, Array]], tuple[Array, ...]]
    run = lambda x: _simulate(arrays, lt, lane_w, *x, t_max, noise, opts)  # noqa: E731
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


def _bytes_per_sample(lt: LayeredTables, n_events: int, n_pad: int) -> int:
    """A generous estimate of one sample's working arrays (per-interval arrays, pairwise orderings, readout)."""
    items = []
    for st in lt.stages:
        events = (n_events if st.has_inputs else 0) + (st.nrn.shape[0] if st.has_neurons else 0)
        items.append(events * st.nrn_lanes.shape[1])
    total = n_pad * n_pad
    for s in items:
        total += s * s
    for lv in lt.levels:
        m = sum(items[s] for s in lv.stages)
        total += 24 * (m + 1) * lv.neurons.shape[0] + m * m
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
) -> tuple[Array, Array, Array, Array, Array]:
    """One batch (or chunk of it): readout, overflow, counters and grazing value per sample."""
    dtype = lane_w.dtype
    nz = arrays.neurons
    tb = arrays.tables
    n_pad = nz.a.shape[0]
    B = ev_time.shape[0]
    t_end = (t_max / arrays.tick_model).astype(dtype)
    queue = jnp.asarray(opts.bus_queue, dtype)
    eps = jnp.finfo(dtype).eps
    steps = _STEPS[np.dtype(dtype).itemsize]
    theta = nz.theta[None, :] + thr0

    # Input releases, as the general engine forms them: one event per (input spike, label), on the tick grid.
    n_ch = lt.in_sources.shape[0]
    ev_t, ev_c = ev_time.T, ev_channel.T  # [Q, B]: events major, as everything below
    ok = (ev_c >= 0) & (ev_c < n_ch) & (ev_t < t_max) & jnp.isfinite(ev_t) & (ev_t >= 0)
    src = jnp.where(ok[..., None], lt.in_sources[jnp.clip(ev_c, 0, n_ch - 1)], -1)  # [Q, B, Lw]
    src = jnp.moveaxis(src, 2, 1)  # [Q, Lw, B]: the general engine's (event, label) order
    tick = jnp.floor(ev_t / arrays.tick_model + 0.5)
    in_t = jnp.where(src >= 0, tick[:, None, :], jnp.inf).reshape(-1, B).astype(dtype)  # [Ein, B]
    in_src = src.reshape(-1, B)
    n_in = in_t.shape[0]

    crossing = jnp.full((B, n_pad), jnp.inf, dtype)
    crossing_t = jnp.full((n_pad, B), jnp.inf, dtype)  # the same, neuron major, for the bus stages
    gap = jnp.full((B,), jnp.inf, dtype)
    stage_out: dict[int, tuple[Array, ...]] = {}

    def bus_stage(st: StageTables) -> tuple[Array, ...]:
        """Simulate this stage's buses: ``(times, source ids, lanes, delivery times, delayed, dropped)`` per lane
        event, each ``[events * lanes, B]`` (events major, as everything below)."""
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
        i = jnp.arange(n_items, dtype=jnp.int32)[:, None, None]
        j = jnp.arange(n_items, dtype=jnp.int32)[None, :, None]
        before = (t[None, :, :] < t[:, None, :]) | ((t[None, :, :] == t[:, None, :]) & (j < i))  # [i, j, B]
        pos = jnp.sum(before & (bus[None, :, :] == bus[:, None, :]) & live[None, :, :], axis=1, dtype=jnp.int32)
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

    def sweep(lv: LevelTables) -> tuple[Array, Array]:
        """Crossing times ``[B, NL]`` of one depth's neurons and the smallest grazing value per sample."""
        nl = lv.neurons
        NL = nl.shape[0]
        a, be, bi = nz.a[nl], nz.be[nl], nz.bi[nl]
        th = jnp.where(lv.real[None, :], theta[:, nl], jnp.inf)  # [B, NL]
        scale = jnp.abs(nz.theta[nl])
        if lv.stages:
            d = jnp.concatenate([stage_out[s][3] for s in lv.stages], axis=0)  # [M, B]
            ls = jnp.concatenate([stage_out[s][2] for s in lv.stages], axis=0)
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

    n_stages = len(lt.stages)
    if n_stages:
        stage_out[0] = bus_stage(lt.stages[0])
    delay = noise[1]
    stamp = jnp.full((B, n_pad), jnp.inf, dtype)
    for d, lv in enumerate(lt.levels, start=1):
        c, g = sweep(lv)
        at = jnp.where(lv.real, lv.neurons, n_pad)  # padding: dropped
        crossing = crossing.at[:, at].set(c, mode="drop")
        crossing_t = crossing_t.at[at].set(c.T, mode="drop")
        # The FPGA's timestamp (scattered per layer, so that the readout below reads it, not its noise draw).
        st = jnp.maximum(c + delay + jit0[:, lv.neurons], 0.0)
        stamp = stamp.at[:, at].set(jnp.floor(st) if opts.quantize_timestamps else st, mode="drop")
        gap = jnp.minimum(gap, g)
        if d < n_stages:
            stage_out[d] = bus_stage(lt.stages[d])

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
    rows = jnp.arange(B)[:, None]
    rec_t = jnp.full((B, E), jnp.inf, dtype).at[rows, slot].set(stamp, mode="drop")
    rec_n = jnp.full((B, E), -1, jnp.int32).at[rows, slot].set(jnp.broadcast_to(tb.index, (B, n_pad)), mode="drop")
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


_run_layered = jax.jit(_run_layered_impl, static_argnames=("opts", "requantize"))
