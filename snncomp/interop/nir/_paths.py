"""NIR import, projections: follow paths through weight, scale and delay nodes and emit IR edges."""

from __future__ import annotations

import re
from typing import Any, cast

import numpy as np
from pydantic import ValidationError

from ...ir import Edge
from ...ir._io import diagnostics_from_validation_error
from ._common import _EDGE, _MASK, _MASKED, _f64, _json, _numeric, _unique
from ._state import _Chain, _ImporterBase, _Leaf, _Pop


class _Paths(_ImporterBase):
    # -- projections ---------------------------------------------------------------------------
    def trace_paths(self, pops: dict[str, _Pop]) -> tuple[list[tuple[float, Edge]], list[str]]:
        """Follow every path from an Input or neuron through weight nodes to a neuron or Output."""
        out_edges: dict[str, list[str]] = {k: [] for k in self.leaves}
        for s, d in self.edges:
            out_edges[s].append(d)
        edge_order = {k: i for i, k in enumerate(self.mark.get("edges", []))} if self.mark else {}
        self._out_edges = out_edges
        self._pops = pops
        self._edge_order = edge_order
        for key, pop in pops.items():
            n = cast(int, pop.leaf.size_out)  # sized: see convert_populations
            # Spyx tests the previous step's v: a neuron's spike leaves one step after its crossing, so
            # every projection out of a neuron (not out of an Input) is delayed by one step.
            lag: tuple[float, ...] = ()
            if self.convention == "spyx" and self.dt is not None and pop.node.kind != "input":
                lag = (float(self.dt),)
            start = _Chain(None, False, None, None, lag, ())
            if pop.node.kind == "li":
                bad = [d for d in out_edges[key] if self.leaves[d].role not in ("output", "ignored")]
                if bad:
                    self.problem(
                        pop.leaf.where,
                        f"feeds {', '.join(repr(b) for b in bad)}, but a leaky integrator's output is its voltage, "
                        "which snncomp cannot send through a projection; li populations are readouts",
                    )
                    continue
            self.walk(key, key, start, (key,), n)
        return self._edges, self._outputs

    def walk(self, src: str, cur: str, chain: _Chain, visiting: tuple[str, ...], n_src: int) -> None:
        for dst in self._out_edges[cur]:
            leaf = self.leaves[dst]
            if leaf.role in ("ignored", "input"):
                continue  # an edge into a graph Input was reported by infer_sizes
            if leaf.role == "neuron":
                if dst in self._pops:
                    self.emit(src, dst, chain, n_src)
            elif leaf.role == "output":
                self.mark_output(src, leaf, chain)
            else:
                if dst in visiting:
                    loop = " -> ".join([*visiting[visiting.index(dst) :], dst])
                    self.problem(leaf.where, f"is on a loop of weight nodes without a neuron ({loop})")
                    continue
                nxt = self.apply(chain, leaf)
                if nxt is None:
                    continue
                if not self._out_edges[dst]:
                    self.notes.append(f"{leaf.where} feeds nothing; ignored")
                self.walk(src, dst, nxt, (*visiting, dst), n_src)

    def apply(self, chain: _Chain, leaf: _Leaf) -> _Chain | None:
        node, role = leaf.node, leaf.role
        if role == "pass":
            return chain
        # Sized by infer_sizes, and the parameters are numeric: flatten reported any that are not.
        cur = cast(int, leaf.size_in)
        if role == "linear":
            w = cast(np.ndarray, _numeric(node.weight))
            fixed, tgt = chain.fixed_delay, chain.tgt_delay
            if tgt is not None:
                if not np.all(tgt == tgt[0]):
                    self.problem(
                        leaf.where,
                        "follows a Delay with different delays per channel after another weight node; a "
                        "projection has one delay per synapse only when per-channel delays sit next to neurons",
                    )
                    return None
                fixed, tgt = (*fixed, float(tgt[0])), None
            if chain.matrix is None:
                matrix = w  # kept as is, so weights keep their dtype and bits
            else:
                matrix = w.astype(np.float64) @ chain.matrix.astype(np.float64)
            return _Chain(matrix, True, chain.src_delay, tgt, fixed, (*chain.path, leaf.key))
        if role == "scale":
            s = _f64(cast(np.ndarray, _numeric(node.scale)), cur)
            base = np.eye(cur) if chain.matrix is None else chain.matrix.astype(np.float64)
            path = (*chain.path, leaf.key)
            return _Chain(s[:, None] * base, chain.mixed, chain.src_delay, chain.tgt_delay, chain.fixed_delay, path)
        # delay: in file units; delays before the first weight node belong to the source's channels
        d = cast(np.ndarray, _numeric(node.delay))
        d = np.broadcast_to(d.reshape(-1) if d.ndim else d, (cur,)).astype(np.float64)
        if self.unit != 1.0:
            d = d * self.unit
        if not chain.mixed:
            src = d if chain.src_delay is None else chain.src_delay + d
            return _Chain(chain.matrix, False, src, chain.tgt_delay, chain.fixed_delay, (*chain.path, leaf.key))
        tgt = d if chain.tgt_delay is None else chain.tgt_delay + d
        return _Chain(chain.matrix, True, chain.src_delay, tgt, chain.fixed_delay, (*chain.path, leaf.key))

    def mark_output(self, src: str, out: _Leaf, chain: _Chain) -> None:
        pop = self._pops[src]
        if chain.path:
            via = self.leaves[chain.path[-1]]
            self.problem(
                out.where,
                f"receives from {via.where}; snncomp outputs are populations (their spikes, or an li's "
                "voltage), so only a neuron node (or a subgraph ending in one) can feed an Output",
            )
        elif pop.node.kind == "input":
            self.notes.append(f"{out.where} is fed directly by Input '{src}'; an input cannot be an output, dropped")
        elif pop.name not in self._outputs:
            self._outputs.append(pop.name)

    def emit(self, src: str, dst: str, chain: _Chain, n_src: int) -> None:
        source, target = self._pops[src], self._pops[dst]
        n_tgt = cast(int, target.leaf.size_in)  # sized: see convert_populations
        matrix = np.eye(n_src) if chain.matrix is None else chain.matrix
        w_dtype = np.float32 if matrix.dtype == np.float32 else np.float64
        scale = cast(np.ndarray, target.in_scale)  # a target is a neuron population, which has one
        if chain.matrix is not None and np.all(scale == 1.0):
            weight = matrix.astype(w_dtype, copy=False)
        else:
            # Computed in float64 and rounded once; float32 models stay float32.
            if not (w_dtype == np.float32 and target.scale_f32):
                w_dtype = np.float64
            weight = (matrix.astype(np.float64) * scale[:, None]).astype(w_dtype)
        weight = np.ascontiguousarray(weight.T)  # NIR is [target, source]; the IR is [source, target]

        delays = self.delays(chain, n_src, n_tgt)
        linear = next((k for k in chain.path if self.leaves[k].role == "linear"), None)
        ours = self.leaves[linear].meta if linear is not None and _EDGE in self.leaves[linear].meta else None
        base_name = None if not chain.path else re.sub(r"\s", "_", "+".join(chain.path))[:180]
        order = float(self._edge_order.get(linear, len(self._edge_order))) if linear else float(len(self._edge_order))
        groups = [(delays, None)] if isinstance(delays, float) else _delay_groups(delays)
        for k, (delay, mask) in enumerate(groups):
            edge_mask = mask
            w = weight
            if ours is not None and len(groups) == 1:
                assert linear is not None  # ours comes from it
                blob = _json(ours[_EDGE])
                ename = blob.get("name") if isinstance(blob, dict) else None
                if _MASK in ours:
                    edge_mask = np.asarray(ours[_MASK], dtype=bool)
                    if edge_mask.shape != weight.shape:
                        self.problem(
                            self.leaves[linear].where,
                            f"metadata '{_MASK}' has shape {list(edge_mask.shape)} but the projection is "
                            f"{list(weight.shape)}",
                        )
                        return
                    if _MASKED in ours:
                        hidden = np.asarray(ours[_MASKED])
                        if hidden.shape != ((~edge_mask).sum(),):
                            self.problem(self.leaves[linear].where, f"metadata '{_MASKED}' does not fit the mask")
                            return
                        w = weight.copy()
                        w[~edge_mask] = hidden.astype(w.dtype)
            else:
                ename = None if base_name is None else (base_name if len(groups) == 1 else f"{base_name}@{k}")
                if ename is not None:
                    ename = _unique(ename, self._edge_names) if ename in self._edge_names else ename
            if ename is not None:
                self._edge_names.add(ename)
            try:
                edge = Edge(source=source.name, target=target.name, weight=w, mask=edge_mask, delay=delay, name=ename)
            except ValidationError as exc:
                reasons = "; ".join(str(d) for d in diagnostics_from_validation_error(exc, {}))
                path = " -> ".join((src, *chain.path, dst))
                self.problem(f"path {path}", f"does not make a valid projection: {reasons}")
                return
            self._edges.append((order, edge))

    @staticmethod
    def delays(chain: _Chain, n_src: int, n_tgt: int) -> float | np.ndarray:
        """The path's delay: one number, or a [source, target] matrix when channels differ."""
        parts: list[Any] = list(chain.fixed_delay)
        if chain.src_delay is not None:
            parts.append(chain.src_delay[:, None])
        if chain.tgt_delay is not None:
            parts.append(chain.tgt_delay[None, :])
        if not parts:
            return 0.0
        # Summed without a 0.0 start, so a single delay keeps its exact value (and sign of zero).
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        if np.ndim(total) == 0:
            return float(total)
        full = np.broadcast_to(total, (n_src, n_tgt))
        if np.all(full == full.flat[0]):
            return float(full.flat[0])
        return np.array(full)


def _delay_groups(delays: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Split a per-synapse delay matrix into (delay, mask) pairs, one projection each."""
    return [(float(d), delays == d) for d in np.unique(delays)]
