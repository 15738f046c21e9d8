"""The pass-level graph: a networkx ``MultiDiGraph`` over IR payloads.

Layout (one convention for every pass):

- ``g.graph``: ``name``, ``ir_version``, ``outputs``, ``metadata`` (the network's own fields),
  ``ann`` (graph-level annotations, e.g. ``structure``, ``schedule``) and ``ensured`` (a frozenset
  of properties that passes so far have established).
- node ``n`` (the population's name): ``ir`` (the IR node model), ``ann`` (a dict of annotations).
- edge ``(u, v, key)`` with ``key`` the edge's unique key: ``ir`` (the IR edge), ``ann``, ``index``
  (its position in the IR, so IR → graph → IR keeps the order).

Passes never mutate their input: they ``copy`` the graph and replace annotation dicts rather than
edit them (``networkx`` copies attribute dicts shallowly), which :func:`annotate_node` and friends do.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from ..ir import Network

__all__ = [
    "annotate_edge",
    "annotate_graph",
    "annotate_node",
    "edge_annotations",
    "from_graph",
    "graph_annotations",
    "node_annotations",
    "to_graph",
]


def to_graph(net: Network) -> nx.MultiDiGraph:
    """The graph of ``net`` with empty annotations."""
    g = nx.MultiDiGraph(
        name=net.name,
        ir_version=net.ir_version,
        outputs=net.outputs,
        metadata=net.metadata,
        ann={},
        ensured=frozenset(),
    )
    for node in net.nodes:
        g.add_node(node.name, ir=node, ann={})
    for i, (key, edge) in enumerate(zip(net.edge_keys(), net.edges)):
        g.add_edge(edge.source, edge.target, key=key, ir=edge, ann={}, index=i)
    return g


def from_graph(g: nx.MultiDiGraph) -> Network:
    """The (validated) IR network the graph holds; annotations are dropped."""
    nodes = tuple(data["ir"] for _, data in g.nodes(data=True))
    edges = tuple(d["ir"] for *_, d in sorted(g.edges(keys=True, data=True), key=lambda e: e[3]["index"]))
    return Network(
        ir_version=g.graph["ir_version"],
        name=g.graph["name"],
        nodes=nodes,
        edges=edges,
        outputs=tuple(o for o in g.graph["outputs"] if o in g.nodes),
        metadata=g.graph["metadata"],
    )


def rekey(g: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose edge keys and indices are those of the network it holds (after edges were removed).

    Annotations are carried over; graph attributes are kept.
    """
    net = from_graph(g)
    out = to_graph(net)
    out.graph.update({k: v for k, v in g.graph.items()})
    for name in out.nodes:
        out.nodes[name]["ann"] = g.nodes[name]["ann"]
    old = sorted(g.edges(keys=True, data=True), key=lambda e: e[3]["index"])
    new = sorted(out.edges(keys=True, data=True), key=lambda e: e[3]["index"])
    for (*_, d_old), (*_, d_new) in zip(old, new):
        d_new["ann"] = d_old["ann"]
    return out


def annotate_node(g: nx.MultiDiGraph, name: str, **values: Any) -> None:
    """Set annotations on a node of a graph the caller owns (copy-on-write of the dict)."""
    g.nodes[name]["ann"] = {**g.nodes[name]["ann"], **values}


def annotate_edge(g: nx.MultiDiGraph, u: str, v: str, key: str, **values: Any) -> None:
    """Set annotations on an edge of a graph the caller owns."""
    data = g.edges[u, v, key]
    data["ann"] = {**data["ann"], **values}


def annotate_graph(g: nx.MultiDiGraph, **values: Any) -> None:
    """Set graph-level annotations on a graph the caller owns."""
    g.graph["ann"] = {**g.graph["ann"], **values}


def graph_annotations(g: nx.MultiDiGraph) -> dict[str, Any]:
    """Graph-level annotations (read-only view by convention)."""
    return g.graph["ann"]


def node_annotations(g: nx.MultiDiGraph) -> dict[str, dict[str, Any]]:
    """Annotations per node name."""
    return {n: d["ann"] for n, d in g.nodes(data=True)}


def edge_annotations(g: nx.MultiDiGraph) -> dict[str, dict[str, Any]]:
    """Annotations per edge key."""
    return {k: d["ann"] for _, _, k, d in g.edges(keys=True, data=True)}
