"""``analyze-structure``: feed-forward or recurrent, components, layers, fan-in/out, synapses."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..ir import SPIKING_KINDS
from ._annotations import Structure
from ._graph import annotate_edge, annotate_graph, annotate_node
from ._pass import Pass, PassContext, register


def condensation_layers(g: nx.MultiDiGraph) -> tuple[list[tuple[str, ...]], dict[str, int], dict[str, int]]:
    """SCCs (sorted tuples), the SCC index of each node, and each node's depth (longest path from a source)."""
    simple = nx.DiGraph(g)
    cond = nx.condensation(simple)
    comp_of = cond.graph["mapping"]
    name_of = {c: min(cond.nodes[c]["members"]) for c in cond.nodes}
    order = list(nx.lexicographical_topological_sort(cond, key=lambda c: name_of[c]))
    depth: dict[int, int] = {}
    for c in order:
        preds = list(cond.predecessors(c))
        depth[c] = 1 + max(depth[p] for p in preds) if preds else 0
    sccs = [tuple(sorted(cond.nodes[c]["members"])) for c in order]
    index = {c: i for i, c in enumerate(order)}
    return sccs, {n: index[comp_of[n]] for n in g.nodes}, {n: depth[comp_of[n]] for n in g.nodes}


@register
@dataclass(frozen=True)
class AnalyzeStructure(Pass):
    """Annotate the graph with its structure.

    Graph: ``structure`` (:class:`Structure`: feed-forward?, SCCs, topological
    layers of the condensation, single-spike populations, recurrent edges, total
    synapses). Nodes: ``layer``, ``scc``, ``fan_in``/``fan_out`` (synapses into /
    out of the population), ``sources``/``targets`` (neighbour populations).
    Edges: ``recurrent`` (inside a component or a self-loop).
    """

    name = "analyze-structure"
    ensures = ("structure",)

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        sccs, scc_of, depth = condensation_layers(g)
        recurrent_edges = []
        for u, v, key, _data in g.edges(keys=True, data=True):
            rec = scc_of[u] == scc_of[v]
            annotate_edge(g, u, v, key, recurrent=rec)
            if rec:
                recurrent_edges.append(key)
        for name, _data in g.nodes(data=True):
            fan_in = sum(d["ir"].n_synapses for *_, d in g.in_edges(name, data=True))
            fan_out = sum(d["ir"].n_synapses for *_, d in g.out_edges(name, data=True))
            annotate_node(
                g,
                name,
                layer=depth[name],
                scc=scc_of[name],
                fan_in=fan_in,
                fan_out=fan_out,
                sources=tuple(sorted({u for u, _ in g.in_edges(name)})),
                targets=tuple(sorted({v for _, v in g.out_edges(name)})),
            )
        n_layers = max(depth.values(), default=-1) + 1
        layers: list[list[tuple[str, ...]]] = [[] for _ in range(n_layers)]
        for comp in sccs:
            layers[depth[comp[0]]].append(comp)
        single = tuple(
            sorted(n for n, d in g.nodes(data=True) if d["ir"].kind in SPIKING_KINDS and d["ir"].max_spikes == 1)
        )
        structure = Structure(
            feedforward=not recurrent_edges,
            sccs=tuple(sccs),
            layers=tuple(tuple(sorted(layer)) for layer in layers),
            single_spike=single,
            recurrent_edges=tuple(sorted(recurrent_edges)),
            synapses=sum(d["ir"].n_synapses for *_, d in g.edges(data=True)),
        )
        annotate_graph(g, structure=structure)
        ctx.remark(structure.text())
        return g
