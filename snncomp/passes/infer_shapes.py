"""``infer-shapes``: annotate every population and projection with its shape and synapse count."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ._graph import annotate_edge, annotate_node
from ._pass import Pass, PassContext, register


@register
@dataclass(frozen=True)
class InferShapes(Pass):
    """Annotate nodes with ``shape`` and edges with ``shape`` and ``synapses``.

    Shapes are already guaranteed by the IR; this pass makes them visible to
    later passes and to the printed graph, and totals fan-in per population.
    """

    name = "infer-shapes"
    ensures = ("shapes",)

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        for name, data in g.nodes(data=True):
            annotate_node(g, name, shape=(data["ir"].size,))
        for u, v, key, data in list(g.edges(keys=True, data=True)):
            edge = data["ir"]
            annotate_edge(g, u, v, key, shape=tuple(edge.weight.shape), synapses=edge.n_synapses)
        return g
