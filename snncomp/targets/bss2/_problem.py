"""The lowering problem as flat arrays: neurons with global ids, and one *slot* per physical synapse needed.

A slot is one synapse the chip must provide: (projection, source neuron, target neuron, sign, copy) with
its hardware weight magnitude. ``split-sign`` decides the signs, ``quantize`` the magnitudes and the copies
(``saturate=split``). ``place`` and ``route`` work on these arrays, never on the IR directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import networkx as nx
import numpy as np

from ...errors import SnnCompError
from ._annotations import PopulationPlacement, Quantized, SignSplit
from .chip import ChipSpec

__all__ = ["EXC", "INH", "Placement", "Problem", "chip_of", "describe_neurons"]

EXC, INH = 0, 1
SIGN_NAMES = ("excitatory", "inhibitory")


def chip_of(graph: nx.MultiDiGraph, options: dict | None = None) -> ChipSpec:
    """The chip this compilation targets: the graph's ``chip`` annotation, else the compile option ``chip``."""
    chip = graph.graph["ann"].get("chip")
    if chip is None and options:
        chip = options.get("chip")
    if chip is None:
        return ChipSpec()
    if isinstance(chip, dict):
        return ChipSpec.model_validate(chip)
    if not isinstance(chip, ChipSpec):
        raise SnnCompError(f"compile option 'chip' must be a ChipSpec or a dict, got {type(chip).__name__}")
    return chip


@dataclass(frozen=True)
class EdgeInfo:
    """One projection of the graph: its key, endpoints and position in the IR."""

    key: str
    source: str
    target: str
    index: int


@dataclass
class Problem:
    """Neurons (global ids, inputs included) and slots of a quantized, sign-split graph."""

    chip: ChipSpec
    pops: list[str]
    kinds: dict[str, Literal["input", "lif", "li", "if"]]
    sizes: dict[str, int]
    first: dict[str, int]
    pop_of: np.ndarray
    index_of: np.ndarray
    external: np.ndarray
    edges: list[EdgeInfo]
    s_edge: np.ndarray
    s_src: np.ndarray
    s_tgt: np.ndarray
    s_sign: np.ndarray
    s_weight: np.ndarray
    s_i: np.ndarray
    s_j: np.ndarray
    skipped: list[str] = field(default_factory=list)

    @property
    def n_neurons(self) -> int:
        """Neurons of every population, inputs included."""
        return len(self.pop_of)

    @property
    def n_slots(self) -> int:
        """Physical synapses the network needs."""
        return len(self.s_src)

    def ids(self, pop: str) -> np.ndarray:
        """Global ids of population ``pop``'s neurons."""
        return np.arange(self.first[pop], self.first[pop] + self.sizes[pop])

    def name(self, nid: int) -> str:
        """``pop[i]`` for global id ``nid``."""
        return f"{self.pops[self.pop_of[nid]]}[{self.index_of[nid]}]"

    def placed_ids(self) -> np.ndarray:
        """Ids of every neuron that needs circuits (all but inputs), in population order."""
        return np.nonzero(~self.external)[0]

    def fan_in(self) -> np.ndarray:
        """Slots into each neuron (0 for inputs)."""
        return np.bincount(self.s_tgt, minlength=self.n_neurons)

    @classmethod
    def from_graph(cls, g: nx.MultiDiGraph, chip: ChipSpec) -> Problem:
        """Collect neurons and slots; every edge must carry ``signs`` and ``quant`` annotations."""
        pops, kinds, sizes, first = [], {}, {}, {}
        pop_of, index_of, external = [], [], []
        count = 0
        for name, data in g.nodes(data=True):
            node = data["ir"]
            first[name] = count
            count += node.size
            pops.append(name)
            kinds[name] = node.kind
            sizes[name] = node.size
            pop_of.append(np.full(node.size, len(pops) - 1))
            index_of.append(np.arange(node.size))
            external.append(np.full(node.size, node.kind == "input"))
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        edges: list[EdgeInfo] = []
        parts: list[tuple[np.ndarray, ...]] = []
        skipped = []
        for u, v, key, data in sorted(g.edges(keys=True, data=True), key=lambda e: e[3]["index"]):
            info = EdgeInfo(key, u, v, data["index"])
            e_idx = len(edges)
            edges.append(info)
            if kinds[u] == "li":
                skipped.append(key)  # an li readout never spikes: its projections carry no events
                continue
            signs: SignSplit | None = data["ann"].get("signs")
            quant: Quantized | None = data["ann"].get("quant")
            if signs is None or quant is None:
                raise SnnCompError(f"projection '{key}' has no 'signs'/'quant' annotation; run split-sign and quantize")
            w, wmax = quant.w_hw, quant.w_max
            for sign, mask, mag in ((EXC, signs.exc, np.maximum(w, 0)), (INH, signs.inh, np.maximum(-w, 0))):
                ii, jj = np.nonzero(mask)
                m = mag[ii, jj].astype(np.int64)
                copies = np.maximum(1, -(-m // wmax))
                rep = np.repeat(np.arange(len(m)), copies)
                q = np.arange(len(rep)) - np.repeat(np.cumsum(copies) - copies, copies)
                weight = np.minimum(wmax, m[rep] - q * wmax)
                n = len(rep)
                parts.append(
                    (
                        np.full(n, e_idx),
                        first[u] + ii[rep],
                        first[v] + jj[rep],
                        np.full(n, sign),
                        weight,
                        ii[rep],
                        jj[rep],
                    )
                )
        cols = list(zip(*parts)) if parts else [[] for _ in range(7)]
        return cls(
            chip=chip,
            pops=pops,
            kinds=kinds,
            sizes=sizes,
            first=first,
            pop_of=cat(pop_of, np.int64),
            index_of=cat(index_of, np.int64),
            external=cat(external, bool),
            edges=edges,
            s_edge=cat(cols[0], np.int64),
            s_src=cat(cols[1], np.int64),
            s_tgt=cat(cols[2], np.int64),
            s_sign=cat(cols[3], np.int64),
            s_weight=cat(cols[4], np.int64),
            s_i=cat(cols[5], np.int64),
            s_j=cat(cols[6], np.int64),
            skipped=skipped,
        )


def describe_neurons(problem: Problem, ids: np.ndarray | list[int], limit: int = 4) -> str:
    """``h[0-31], x[0-24]``: neurons grouped by population with index ranges."""
    from ._annotations import ranges

    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if len(ids) == 0:
        return "nothing"
    out = []
    for p in np.unique(problem.pop_of[ids]):
        sel = ids[problem.pop_of[ids] == p]
        out.append(f"{problem.pops[p]}[{ranges(problem.index_of[sel])}]")
    if len(out) > limit:
        out = [*out[:limit], f"... ({len(out) - limit} more populations)"]
    return ", ".join(out)


@dataclass
class Placement:
    """Anchor circuit and width of every placed neuron (global ids; inputs have ``hemisphere = -1``)."""

    hemisphere: np.ndarray
    column: np.ndarray
    width: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Placement:
        """Nothing placed yet."""
        return cls(np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.ones(n, np.int64))

    def copy(self) -> Placement:
        """An independent copy."""
        return Placement(self.hemisphere.copy(), self.column.copy(), self.width.copy())

    @classmethod
    def from_graph(cls, g: nx.MultiDiGraph, problem: Problem) -> Placement:
        """Read the ``placement`` node annotations of ``place``."""
        out = cls.empty(problem.n_neurons)
        for pop in problem.pops:
            if problem.kinds[pop] == "input":
                continue
            ann: PopulationPlacement | None = g.nodes[pop]["ann"].get("placement")
            if ann is None:
                raise SnnCompError(f"population '{pop}' has no 'placement' annotation; run place first")
            ids = problem.ids(pop)
            out.hemisphere[ids] = ann.hemisphere
            out.column[ids] = ann.column
            out.width[ids] = ann.width
        return out
