"""The deterministic text form of a network (MLIR-like, one line per item).

Order: populations in topological order of the strongly-connected-component
condensation, ties broken by name; projections in the order of their source,
then target, then key. Arrays are summarized as ``f64[5,120](min=…, max=…)``.
Times carry an ``s`` suffix (seconds); voltages are in model units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._models import Edge, Network

TIME_FIELDS = ("tau_mem", "tau_syn", "t_refrac")
_DTYPE_SHORT = {"float32": "f32", "float64": "f64", "bool": "i1"}

Notes = Mapping[str, Mapping[str, Any]]


def format_array(arr: np.ndarray) -> str:
    """``f64[5,120](min=-0.5, max=0.5)``; bool arrays show how many are set."""
    head = f"{_DTYPE_SHORT.get(arr.dtype.name, arr.dtype.name)}[{','.join(map(str, arr.shape))}]"
    if arr.size == 0:
        return head
    if arr.dtype == np.bool_:
        return f"{head}(set={int(arr.sum())})"
    return f"{head}(min={float(arr.min()):.6g}, max={float(arr.max()):.6g})"


def format_value(value: Any, unit: str = "") -> str:
    """A scalar exactly (shortest repr) with its unit, an array summary, or a compact container."""
    if isinstance(value, np.ndarray):
        return format_array(value) + unit
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value!r}{unit}"
    if isinstance(value, str):
        return value
    if value is None:
        return "none"
    if isinstance(value, (list, tuple, frozenset, set)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ", ".join(format_value(v) for v in items) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    return f"{value}{unit}"


def _default_bias(node: Any, field: str) -> bool:
    """A zero ``bias`` is not printed: most networks have none, and their listing stays as it was."""
    if field != "bias":
        return False
    value = getattr(node, field)
    return not isinstance(value, np.ndarray) and float(value) == 0.0


def node_order(nodes: list[str], edges: list[tuple[str, str]]) -> list[str]:
    """Topological order of the SCC condensation, ties by name (deterministic)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    cond = nx.condensation(g)
    comp_name = {c: min(data["members"]) for c, data in cond.nodes(data=True)}
    order: list[str] = []
    for comp in nx.lexicographical_topological_sort(cond, key=lambda c: comp_name[c]):
        order.extend(sorted(cond.nodes[comp]["members"]))
    return order


def _notes(notes: Notes | None, key: str) -> str:
    if not notes or key not in notes or not notes[key]:
        return ""
    items = ", ".join(f"{k}={format_value(v)}" for k, v in sorted(notes[key].items()))
    return f" {{{items}}}"


def _edge_line(key: str, edge: Edge, notes: Notes | None) -> str:
    parts = [f"weight={format_array(edge.weight)}"]
    if edge.mask is not None:
        parts.append(f"mask={format_array(edge.mask)}")
    parts.append(f"synapses={edge.n_synapses}")
    parts.append(f"delay={format_value(edge.delay, 's')}")
    return f"  %{edge.source} -> %{edge.target} [{key}] : " + " ".join(parts) + _notes(notes, key)


def format_network(
    net: Network,
    node_notes: Notes | None = None,
    edge_notes: Notes | None = None,
    graph_notes: Mapping[str, Any] | None = None,
) -> str:
    """The text form of ``net``; ``*_notes`` add pass annotations (``{…}`` per item, ``attr`` lines)."""
    by_name = {n.name: n for n in net.nodes}
    order = node_order(list(by_name), [(e.source, e.target) for e in net.edges])
    rank = {name: i for i, name in enumerate(order)}
    lines = [f"network @{net.name} (ir_version={net.ir_version}) {{"]
    for name in order:
        node = by_name[name]
        fields = [
            f"{f}={format_value(getattr(node, f), 's' if f in TIME_FIELDS else '')}"
            for f in type(node).model_fields
            if f not in ("kind", "name", "size") and not _default_bias(node, f)
        ]
        head = f"  %{name} = {node.kind}[{node.size}]"
        lines.append(" ".join([head, *fields]) + _notes(node_notes, name))
    keyed = sorted(zip(net.edge_keys(), net.edges), key=lambda ke: (rank[ke[1].source], rank[ke[1].target], ke[0]))
    for key, edge in keyed:
        lines.append(_edge_line(key, edge, edge_notes))
    outs = net.output_names()
    declared = "" if net.outputs else " (implicit)"
    lines.append("  outputs " + (", ".join(f"%{o}" for o in outs) if outs else "none") + declared)
    if net.metadata:
        import json

        lines.append("  metadata " + json.dumps(net.metadata, sort_keys=True, separators=(",", ":")))
    for key, value in sorted((graph_notes or {}).items()):
        text = value.text() if hasattr(value, "text") else format_value(value)
        lines.append(f"  attr {key} = " + text.replace("\n", "\n    "))
    lines.append("}")
    return "\n".join(lines)
