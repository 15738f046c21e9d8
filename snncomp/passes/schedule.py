"""``schedule``: choose the simulator's execution strategy per region and size event buffers."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import networkx as nx

from ..errors import SnnCompError
from ..ir import SPIKING_KINDS
from ._annotations import Schedule, Stage, Structure
from ._graph import annotate_graph, annotate_node
from ._pass import Pass, PassContext, register


@register
@dataclass(frozen=True)
class ScheduleEvents(Pass):
    """Split the network into ordered stages and size every spike buffer.

    A population is *layer-parallel* when it is alone in its strongly connected
    component, has no self-loop, and is an ``li`` readout or a ``lif`` with
    ``max_spikes = 1``: its neurons can all be solved at once from the (sorted)
    spikes of earlier stages. Everything else — recurrent components and
    multi-spike populations — runs in an *event-queue* stage, one per component.
    Stages are ordered by topological depth; at equal depth the layer-parallel
    stage comes first, then event-queue stages by name.

    Buffers (spikes per sample a population can record) are ``size × max_spikes``;
    for a population with unbounded ``max_spikes`` the option ``spikes_per_neuron``
    gives the bound, and without it the buffer is sized automatically:
    ``auto_spikes_per_neuron`` spikes per neuron (default 8), marked ``buffer_auto``
    on the node so that the runtime may grow it when a run overflows it.
    ``strategy=event-queue`` forces every population into event-queue stages (for
    cross-checking).

    ``early_stop`` (population names; ``o1+o2`` in a pipeline string) ends a sample's run as soon
    as every neuron of those populations has spiked once: what a first-spike loss reads is complete
    then, and nothing later can change it. The event-queue stages upstream of them and the
    populations themselves merge into one event-queue stage that tests the condition after each
    spike; stages after it run up to the stop. Spikes after the stop are not simulated (counts and
    later spikes are cut), so this is an opt-in for losses of first spike times only.
    """

    name = "schedule"
    requires = ("structure",)
    ensures = ("schedule",)

    spikes_per_neuron: int | None = None
    strategy: Literal["auto", "event-queue"] = "auto"
    auto_spikes_per_neuron: int = 8
    early_stop: str | tuple[str, ...] = ()

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        if self.spikes_per_neuron is not None and self.spikes_per_neuron < 1:
            raise SnnCompError(f"schedule{{spikes_per_neuron={self.spikes_per_neuron}}}: must be >= 1")
        if self.auto_spikes_per_neuron < 1:
            raise SnnCompError(f"schedule{{auto_spikes_per_neuron={self.auto_spikes_per_neuron}}}: must be >= 1")
        g = graph.copy()
        structure: Structure = g.graph["ann"]["structure"]
        layer_parallel: dict[int, list[str]] = defaultdict(list)
        queued: list[tuple[int, tuple[str, ...]]] = []
        for comp in structure.sccs:
            first = g.nodes[comp[0]]
            if first["ir"].kind == "input":
                continue
            depth = first["ann"]["layer"]
            if self.strategy == "auto" and self._layer_parallel(g, comp):
                layer_parallel[depth].append(comp[0])
            else:
                queued.append((depth, comp))
        stages: list[Stage] = []
        depths = sorted(set(layer_parallel) | {d for d, _ in queued})
        for depth in depths:
            if layer_parallel.get(depth):
                stages.append(
                    Stage(
                        index=len(stages), strategy="layer-parallel", populations=tuple(sorted(layer_parallel[depth]))
                    )
                )
            for _d, comp in sorted(q for q in queued if q[0] == depth):
                stages.append(Stage(index=len(stages), strategy="event-queue", populations=comp))
        if self.early_stop:
            stages = self._merge_for_stop(g, stages, self._stop_names(g), ctx)
        buffers = {n: self._buffer(g.nodes[n]["ir"]) for n in g.nodes if g.nodes[n]["ir"].kind in SPIKING_KINDS}
        schedule = Schedule(stages=tuple(stages), buffers=buffers)
        auto = sorted(n for n in buffers if g.nodes[n]["ir"].max_spikes is None and self.spikes_per_neuron is None)
        for stage in stages:
            for p in stage.populations:
                extra = {"buffer": buffers[p]} if p in buffers else {}
                if p in auto:
                    extra["buffer_auto"] = True
                annotate_node(g, p, schedule=stage.strategy, stage=stage.index, **extra)
        annotate_graph(g, schedule=schedule)
        ctx.remark(schedule.text())
        if auto:
            ctx.remark(
                f"buffers of {', '.join(auto)} (unbounded max_spikes) sized automatically: "
                f"{self.auto_spikes_per_neuron} spikes per neuron, grown by the runtime when a run overflows them "
                "(fix them with max_spikes or spikes_per_neuron=N)"
            )
        return g

    def _stop_names(self, g: nx.MultiDiGraph) -> tuple[str, ...]:
        raw = self.early_stop
        names = tuple(n for n in raw.replace("+", " ").split() if n) if isinstance(raw, str) else tuple(raw)
        for n in names:
            if n not in g.nodes:
                known = ", ".join(sorted(k for k in g.nodes if g.nodes[k]["ir"].kind in SPIKING_KINDS))
                raise SnnCompError(f"schedule{{early_stop={n}}}: no population '{n}'; spiking populations: {known}")
            if g.nodes[n]["ir"].kind not in SPIKING_KINDS:
                raise SnnCompError(
                    f"schedule{{early_stop={n}}}: population '{n}' is of kind '{g.nodes[n]['ir'].kind}' and never "
                    "spikes; early_stop names populations whose first spikes end the run"
                )
        return tuple(dict.fromkeys(names))

    @staticmethod
    def _merge_for_stop(
        g: nx.MultiDiGraph, stages: list[Stage], stop: tuple[str, ...], ctx: PassContext
    ) -> list[Stage]:
        """One event-queue stage for ``stop`` and the event-queue work upstream of it, then the rest."""
        upstream = set(stop)
        for n in stop:
            upstream |= {a for a in nx.ancestors(g, n) if g.nodes[a]["ir"].kind != "input"}
        involved = [s for s in stages if upstream & set(s.populations)]
        queued = [s for s in involved if s.strategy == "event-queue"]
        if not queued:
            ctx.remark(
                f"early_stop={'+'.join(stop)} has no effect: the populations it depends on are all layer-parallel "
                "(solved at once, not event by event)"
            )
            return stages
        first = queued[0].index
        # Ancestors of a merged population are merged too or come from earlier stages, and nothing merged
        # depends on a stage left behind (it would be an ancestor), so the order stays topological.
        merged = tuple(p for s in stages if s.index >= first for p in s.populations if p in upstream)
        out = [s for s in stages if s.index < first]
        out.append(Stage(index=0, strategy="event-queue", populations=merged, stop_on=stop))
        for s in stages:
            if s.index < first:
                continue
            rest = tuple(p for p in s.populations if p not in upstream)
            if rest:
                out.append(Stage(index=0, strategy=s.strategy, populations=rest))
        return [s.model_copy(update={"index": k}) for k, s in enumerate(out)]

    @staticmethod
    def _layer_parallel(g: nx.MultiDiGraph, comp: tuple[str, ...]) -> bool:
        if len(comp) != 1 or g.has_edge(comp[0], comp[0]):
            return False
        node = g.nodes[comp[0]]["ir"]
        return node.kind == "li" or (node.kind in SPIKING_KINDS and node.max_spikes == 1)

    def _buffer(self, node: object) -> int:
        max_spikes = node.max_spikes  # type: ignore[attr-defined]
        size = node.size  # type: ignore[attr-defined]
        if max_spikes is not None:
            return size * max_spikes
        if self.spikes_per_neuron is None:
            return size * self.auto_spikes_per_neuron
        return size * self.spikes_per_neuron
