"""``canonicalize``: merge parallel projections, drop zero projections and dead populations."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ..errors import PassError
from ..ir import Edge
from ._graph import annotate_graph, from_graph, graph_annotations, rekey
from ._pass import Pass, PassContext, register


@register
@dataclass(frozen=True)
class Canonicalize(Pass):
    """Bring the network to a canonical form without changing what it computes.

    1. Outputs are made explicit (so removing projections cannot turn a
       population into an implicit output).
    2. Parallel projections between the same pair with the same delay are merged
       by summing their effective (masked) weights; the mask becomes the union.
    3. Projections with no non-zero synapse are dropped.
    4. Non-input populations from which no output can be reached are dropped with
       their projections (inputs are kept, so the run-time interface is unchanged).
       Each dropped population is recorded with its reason in the graph annotation
       ``removed`` (``{name: reason}``), so that asking for it later names it as removed.

    A network with non-input populations but no output (a recurrent cycle without
    ``net.output(...)``: every population feeds another) would lose all of them, so it
    is an error rather than an empty program. Every change is reported as a remark.
    The pass is idempotent.
    """

    name = "canonicalize"
    ensures = ("canonical",)
    invalidates = ("structure", "schedule")

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        outputs = from_graph(g).output_names()
        _require_outputs(g, outputs)
        if tuple(g.graph["outputs"]) != outputs:
            g.graph["outputs"] = outputs
            ctx.remark(f"made outputs explicit: {', '.join(outputs) or 'none'}")
        self._merge_parallel(g, ctx)
        self._drop_zero(g, ctx)
        self._drop_dead(g, ctx, outputs)
        # Removing edges can change the default keys of the remaining ones (x->h#2 becomes x->h#1).
        return rekey(g)

    @staticmethod
    def _merge_parallel(g: nx.MultiDiGraph, ctx: PassContext) -> None:
        groups: dict[tuple[str, str, float], list[tuple[str, dict]]] = defaultdict(list)
        for u, v, key, data in g.edges(keys=True, data=True):
            groups[(u, v, data["ir"].delay)].append((key, data))
        for (u, v, delay), members in sorted(groups.items()):
            if len(members) < 2:
                continue
            members.sort(key=lambda kd: kd[1]["index"])
            edges = [d["ir"] for _, d in members]
            dtype = np.result_type(*[e.weight.dtype for e in edges])
            weight = sum((e.effective_weight().astype(dtype) for e in edges), np.zeros(edges[0].weight.shape, dtype))
            if any(e.mask is None for e in edges):
                mask = None
            else:
                mask = np.logical_or.reduce([e.mask for e in edges])
            name = next((e.name for e in edges if e.name is not None), None)
            merged = Edge(source=u, target=v, weight=weight, mask=mask, delay=delay, name=name)
            keep_key, keep = members[0]
            for key, _ in members[1:]:
                g.remove_edge(u, v, key)
            keep["ir"] = merged
            keep["ann"] = {}
            ctx.remark(
                f"merged {len(members)} parallel projections {u}->{v} (delay {delay!r}s): "
                f"{', '.join(k for k, _ in members)} -> {keep_key}"
            )

    @staticmethod
    def _drop_zero(g: nx.MultiDiGraph, ctx: PassContext) -> None:
        for u, v, key, data in list(g.edges(keys=True, data=True)):
            if not np.any(data["ir"].effective_weight()):
                g.remove_edge(u, v, key)
                ctx.remark(f"dropped projection {key}: every synapse has weight 0")

    @staticmethod
    def _drop_dead(g: nx.MultiDiGraph, ctx: PassContext, outputs: tuple[str, ...]) -> None:
        alive: set[str] = set(outputs)
        for out in outputs:
            alive |= nx.ancestors(g, out)
        removed = dict(graph_annotations(g).get("removed", {}))
        for name in sorted(set(g.nodes) - alive):
            if g.nodes[name]["ir"].kind == "input":
                ctx.remark(f"input '{name}' reaches no output (kept: it is part of the run-time interface)")
                continue
            g.remove_node(name)
            reason = f"removed by canonicalize: it reaches no output (outputs: {', '.join(outputs)})"
            removed[name] = reason
            ctx.remark(f"dropped population '{name}': it reaches no output")
        if removed:
            annotate_graph(g, removed=removed)


def _require_outputs(g: nx.MultiDiGraph, outputs: tuple[str, ...]) -> None:
    populations = sorted(n for n, d in g.nodes(data=True) if d["ir"].kind != "input")
    if outputs or not populations:
        return
    cycles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    why = (
        "every non-input population feeds another one"
        + (f" (cycle {', '.join('{' + ', '.join(c) + '}' for c in cycles)})" if cycles else "")
        + ", so none is an implicit output and every population would be dropped as unreachable"
    )
    raise PassError(
        f"canonicalize: network '{g.graph['name']}' has no output population: {why}; declare the outputs, "
        f'e.g. net.output({populations[-1]!r}) in the DSL or "outputs": [{populations[-1]!r}] in the IR'
    )
