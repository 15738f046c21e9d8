"""The layer-parallel engine's plan: whether a configuration is layered, and its per-layer device tables.

:func:`layered_plan` reads the ``HardwareConfig``'s event tables alone (see :mod:`._layered` for the
conditions): it finds every neuron's depth, checks single-spike and the buses' queues, and builds the
bus stages (:class:`StageTables`) and layers (:class:`LevelTables`) that :func:`._layered.run_layered`
runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ._arrays import bucket
from ._engine import EngineOptions
from ._routing import EventTables

__all__ = ["LayeredPlan", "LayeredTables", "LevelTables", "StageTables", "layered_plan"]


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
    # input channels (ranges lo..hi-1) whose external sources reach this layer: the others' events are
    # left out of its sweep where the caller says which event columns hold which channels
    in_channels: tuple[tuple[int, int], ...] = eqx.field(static=True, default=())


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

    # Input channels (global index as the executable numbers them): their external sources.
    rows = [r for pop in tables.input_sources for r in tables.input_sources[pop]]
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
        reach = set(c_src[into].tolist())
        channels = _ranges([i for i, r in enumerate(rows) if reach.intersection(r.tolist())])
        levels.append(
            LevelTables(
                neurons=jnp.asarray(idx.astype(np.int32)), real=jnp.asarray(real), stages=feeding, in_channels=channels
            )
        )

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


def _ranges(idx: list[int]) -> tuple[tuple[int, int], ...]:
    """Sorted indices as ``(lo, hi)`` runs of consecutive ones."""
    out: list[tuple[int, int]] = []
    for i in idx:
        if out and out[-1][1] == i:
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return tuple(out)
