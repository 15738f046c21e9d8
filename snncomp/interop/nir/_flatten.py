"""NIR import, structure: flatten nested graphs into leaves, check each node, infer population sizes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._common import _NEURON_PARAMS, _ROLE_OF_TYPE, SUPPORTED_TYPES, _metadata, _numeric, _text
from ._state import _ImporterBase, _Leaf


class _Flattener(_ImporterBase):
    # -- structure ---------------------------------------------------------------------------
    def flatten(self, graph: Any, prefix: str, *, top: bool) -> tuple[list[str], list[str]]:
        """Collect the leaves of ``graph`` under ``prefix``; returns its Input and Output keys."""
        ins: list[str] = []
        outs: list[str] = []
        nodes = getattr(graph, "nodes", None)
        if not isinstance(nodes, dict):
            self.problem(f"subgraph '{prefix[:-1]}'" if prefix else "graph", "has no 'nodes' dictionary")
            return ins, outs
        for raw_key, node in nodes.items():
            flat = prefix + _text(raw_key)
            if flat in self.leaves or flat in self.subgraphs:
                self.problem(f"node '{flat}'", "two nodes have this name once subgraphs are flattened")
                continue
            if isinstance(node, self.nir.NIRGraph):
                self.subgraphs[flat] = self.flatten(node, flat + ".", top=False)
                continue
            tname = type(node).__name__
            if tname == "Input":
                role = "input" if top else "pass"
                ins.append(flat)
            elif tname == "Output":
                role = "output" if top else "pass"
                outs.append(flat)
            else:
                role = _ROLE_OF_TYPE.get(tname, "unsupported")
            leaf = _Leaf(flat, node, tname, role, meta=_metadata(node))
            self.leaves[flat] = leaf
            self.check_leaf(leaf)
        raw_edges = getattr(graph, "edges", None)
        for edge in [] if raw_edges is None else raw_edges:
            try:
                a, b = (_text(x) for x in edge)
            except (TypeError, ValueError):
                self.problem(f"edge {edge!r}" + (f" in subgraph '{prefix[:-1]}'" if prefix else ""), "not a pair")
                continue
            desc = f"edge ({prefix + a!r} -> {prefix + b!r})"
            for s in self.resolve(prefix, a, source=True, desc=desc):
                for d in self.resolve(prefix, b, source=False, desc=desc):
                    self.edges.append((s, d))
        return ins, outs

    def resolve(self, prefix: str, ref: str, *, source: bool, desc: str) -> list[str]:
        full = prefix + ref
        if full in self.leaves:
            return [full]
        if full in self.subgraphs:
            ins, outs = self.subgraphs[full]
            ends = outs if source else ins
            if not ends:
                kind = "Output" if source else "Input"
                self.problem(desc, f"subgraph '{full}' has no {kind} node to connect {'from' if source else 'to'}")
            return ends
        self.problem(desc, f"no node named '{full}'")
        return []

    def check_leaf(self, leaf: _Leaf) -> None:
        """Per-node checks that need no neighbours: type, bias, parameter shapes."""
        node = leaf.node
        if leaf.role == "unsupported":
            self.problem(
                leaf.where,
                f"NIR type {leaf.type} is not supported by snncomp; supported types: {', '.join(SUPPORTED_TYPES)}",
            )
            return
        if leaf.type in ("Linear", "Affine"):
            w = _numeric(getattr(node, "weight", None))
            if w is None or w.ndim != 2:
                shape = None if w is None else list(w.shape)
                self.problem(leaf.where, f"weight must be a 2-D numeric array [out, in], got shape {shape}")
                return
            leaf.size_in, leaf.size_out = int(w.shape[1]), int(w.shape[0])
            if leaf.type == "Affine":
                bias = _numeric(getattr(node, "bias", None))
                if bias is None:
                    self.problem(leaf.where, "bias is not a numeric array")
                elif bias.ndim > 1 or (bias.ndim == 1 and bias.shape[0] not in (1, leaf.size_out)):
                    self.problem(
                        leaf.where,
                        f"bias has shape {list(bias.shape)}; expected a scalar or one value per output "
                        f"({leaf.size_out})",
                    )
                elif not np.all(np.isfinite(bias)):
                    self.problem(leaf.where, "bias must be finite")
        elif leaf.role == "neuron":
            self.param_sizes(leaf, _NEURON_PARAMS[leaf.type])
        elif leaf.role in ("scale", "delay"):
            self.param_sizes(leaf, ("scale",) if leaf.role == "scale" else ("delay",))
            if leaf.role == "delay":
                d = _numeric(getattr(node, "delay", None))
                if d is not None and (not np.all(np.isfinite(d)) or np.any(d < 0)):
                    self.problem(leaf.where, "delay must be finite and >= 0")
        elif leaf.role in ("input", "output", "pass"):
            attr, port = ("input_type", "input") if leaf.type == "Input" else ("output_type", "output")
            types = getattr(node, attr, None)
            shape = types.get(port) if isinstance(types, dict) else None
            if shape is not None:
                dims = _numeric(shape)
                if dims is None or dims.ndim > 1 or not np.all((dims >= 1) & (dims == np.floor(dims))):
                    self.problem(leaf.where, f"shape {shape!r} is not a list of positive sizes")
                else:
                    size = int(np.prod(dims))
                    leaf.size_in = leaf.size_out = size
            elif leaf.role == "input":
                self.problem(leaf.where, "Input node has no shape")

    def param_sizes(self, leaf: _Leaf, params: tuple[str, ...]) -> None:
        sizes: set[int] = set()
        for p in params:
            value = getattr(leaf.node, p, None)
            if value is None and p in ("v_reset", "w_in"):
                continue  # NIR defaults: v_reset = 0, w_in = 1
            arr = _numeric(value)
            if arr is None:
                self.problem(leaf.where, f"parameter {p} is missing or not numeric")
            elif arr.ndim > 1:
                self.problem(leaf.where, f"parameter {p} has shape {list(arr.shape)}; expected a scalar or 1-D array")
            elif arr.ndim == 1 and arr.shape[0] > 1:
                sizes.add(int(arr.shape[0]))
            elif arr.ndim == 1 and arr.shape[0] == 1:
                leaf.fallback = 1
            elif arr.ndim == 1:
                self.problem(leaf.where, f"parameter {p} is empty")
        if len(sizes) > 1:
            self.problem(leaf.where, f"parameters have different lengths {sorted(sizes)}")
        elif sizes:
            leaf.size_in = leaf.size_out = sizes.pop()

    def ignore_inserted_nodes(self) -> None:
        """Drop graph-level Input/Output nodes that NIR's type inference added to a graph we wrote."""
        if self.mark is None:
            return
        ours = set(self.mark.get("keys", []))
        for leaf in self.leaves.values():
            if leaf.role in ("input", "output") and leaf.key not in ours:
                leaf.role = "ignored"

    def infer_sizes(self) -> None:
        """Propagate sizes along edges (NIR edges are identities: sizes must agree)."""
        live = [(s, d) for s, d in self.edges if "ignored" not in (self.leaves[s].role, self.leaves[d].role)]
        for fallback_round in (False, True):
            changed = True
            while changed:
                changed = False
                for leaf in self.leaves.values():
                    if leaf.tied and (leaf.size_in is None) != (leaf.size_out is None):
                        leaf.size_in = leaf.size_out = leaf.size_in or leaf.size_out
                        changed = True
                for s, d in live:
                    src, dst = self.leaves[s], self.leaves[d]
                    if src.size_out is None and dst.size_in is not None:
                        src.size_out, changed = dst.size_in, True
                    elif dst.size_in is None and src.size_out is not None:
                        dst.size_in, changed = src.size_out, True
            if fallback_round:
                break
            for leaf in self.leaves.values():
                if leaf.tied and leaf.size_in is None and leaf.fallback is not None:
                    leaf.size_in = leaf.size_out = leaf.fallback
        for s, d in live:
            src, dst = self.leaves[s], self.leaves[d]
            if dst.role == "input":
                self.problem(f"edge ('{s}' -> '{d}')", f"'{d}' is a graph Input and cannot receive")
            elif src.role == "output":
                self.problem(f"edge ('{s}' -> '{d}')", f"'{s}' is a graph Output and cannot send")
            elif src.size_out is not None and dst.size_in is not None and src.size_out != dst.size_in:
                hint = ""
                if src.role in ("neuron", "input") and dst.role == "neuron":
                    hint = "; an edge without a weight node is an identity projection, which needs equal sizes"
                self.problem(
                    f"edge ('{s}' -> '{d}')",
                    f"size mismatch: {src.where} gives {src.size_out} values but {dst.where} takes {dst.size_in}{hint}",
                )
        for leaf in self.leaves.values():
            if leaf.tied and leaf.size_in != leaf.size_out:
                self.problem(leaf.where, f"its input size {leaf.size_in} differs from its output size {leaf.size_out}")
            if leaf.role == "neuron" and leaf.size_in is None:
                self.problem(
                    leaf.where,
                    "cannot tell how many neurons it has: its parameters are scalars and no weight node, Input "
                    "or Output with a shape connects to it",
                )
