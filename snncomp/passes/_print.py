"""Inspection of a pass-level graph: text form, Graphviz dot, JSON dump."""

from __future__ import annotations

import json
from typing import Any

import networkx as nx
import numpy as np
from pydantic import BaseModel

from ..ir import format_network
from ..ir._printer import format_array
from ._graph import edge_annotations, from_graph, graph_annotations, node_annotations

__all__ = ["format_graph", "graph_to_dot", "graph_to_json"]


def format_graph(g: nx.MultiDiGraph) -> str:
    """Deterministic text form of a graph with its annotations (topological order, ties by name)."""
    net = from_graph(g)
    # Match edges by position, so the notes follow the keys the printed network uses.
    by_index = [d["ann"] for *_, d in sorted(g.edges(keys=True, data=True), key=lambda e: e[3]["index"])]
    edge_notes = dict(zip(net.edge_keys(), by_index))
    return format_network(net, node_annotations(g), edge_notes, graph_annotations(g))


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def graph_to_dot(g: nx.MultiDiGraph) -> str:
    """Graphviz text: populations as boxes (size, model), projections with synapse count and weight range.

    Recurrent projections (inside a strongly connected component, or self-loops) are drawn dashed red.
    """
    sccs = {n: i for i, comp in enumerate(nx.strongly_connected_components(nx.DiGraph(g))) for n in comp}
    lines = [
        f'digraph "{_dot_escape(g.graph["name"])}" {{',
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    outputs = set(from_graph(g).output_names())
    for name, data in sorted(g.nodes(data=True)):
        node = data["ir"]
        label = f"{name}\n{node.kind}[{node.size}]"
        for key in ("schedule", "placement"):
            if data["ann"].get(key) is not None:
                value = data["ann"][key]
                label += f"\n{value.text() if hasattr(value, 'text') else value}"
        style = ', style="rounded,filled", fillcolor="#e8f0fe"' if node.kind == "input" else ""
        if name in outputs:
            style = ", peripheries=2"
        lines.append(f'  "{_dot_escape(name)}" [label="{_dot_escape(label)}"{style}];')
    for u, v, _key, data in sorted(g.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2])):
        edge = data["ir"]
        w = edge.effective_weight()
        rng = f"[{float(w.min()):.3g}, {float(w.max()):.3g}]" if w.size else "[]"
        label = f"{edge.n_synapses} syn\nw {rng}"
        if edge.delay:
            label += f"\nd={edge.delay:g}s"
        recurrent = u == v or sccs[u] == sccs[v]
        style = ', style=dashed, color="#c0392b", fontcolor="#c0392b"' if recurrent else ""
        lines.append(f'  "{_dot_escape(u)}" -> "{_dot_escape(v)}" [label="{_dot_escape(label)}"{style}];')
    # A target may draw its own annotations (e.g. the chip's placement) next to the network.
    from ..targets import loaded

    for target in loaded():
        if target.dot_lines is not None:
            lines += target.dot_lines(g)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.ndarray):
        return {"summary": format_array(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def graph_to_json(g: nx.MultiDiGraph) -> str:
    """The stage as JSON: ``{"network": <IR document>, "annotations": {graph, nodes, edges}}``."""
    doc = {
        "network": json.loads(from_graph(g).model_dump_json()),
        "annotations": {
            "graph": _jsonable(graph_annotations(g)),
            "nodes": _jsonable(node_annotations(g)),
            "edges": _jsonable(edge_annotations(g)),
        },
    }
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"
