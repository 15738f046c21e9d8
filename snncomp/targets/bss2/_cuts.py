"""Where to cut: the neurons in one topological order and the best cut positions in it (for :mod:`.partition`).

A partition is a contiguous range of the order that fits a chip; a recurrent component is never cut.
:func:`fewest` gives the fewest partitions (greedy, optimal in count for a fixed order);
:func:`fewest_cut` the fewest cut synapses (dynamic programming over the cut positions, exact for the order).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from ...ir import Network

__all__ = ["EXACT_NEURONS", "Units", "components", "fewest", "fewest_cut", "units_of"]

EXACT_NEURONS = 5_000  # beyond this many neurons the cut is not minimised (quadratic time): fewest partitions


def components(network: Network) -> tuple[list[tuple[str, ...]], list[bool]]:
    """Strongly connected components of the neuron populations, in a topological order (ties: IR order)."""
    index = {n.name: i for i, n in enumerate(network.nodes)}
    g = nx.DiGraph()
    g.add_nodes_from(n.name for n in network.nodes if n.kind != "input")
    g.add_edges_from((e.source, e.target) for e in network.edges if e.source in g and e.target in g)
    cond = nx.condensation(g)
    first = {c: min(index[p] for p in cond.nodes[c]["members"]) for c in cond.nodes}
    comps, recurrent = [], []
    for c in nx.lexicographical_topological_sort(cond, key=lambda c: first[c]):
        members = tuple(sorted(cond.nodes[c]["members"], key=index.__getitem__))
        comps.append(members)
        recurrent.append(len(members) > 1 or g.has_edge(members[0], members[0]))
    return comps, recurrent


@dataclass
class Units:
    """The placed neurons in one topological order: circuits per neuron, where a cut may fall, links."""

    order: list[str]
    offset: dict[str, int]
    circuits: np.ndarray  # [n] circuits of each neuron
    allowed: np.ndarray  # [n + 1] positions a partition may begin or end at (never inside a recurrent one)
    cap: np.ndarray | None = None  # [n] most circuits of a partition holding the neuron (None: the chip's)

    @property
    def n(self) -> int:
        return len(self.circuits)

    def parts(self, bounds: list[int], sizes: Mapping[str, int]) -> list[list[tuple[str, int, int]]]:
        """``[(population, start, stop)]`` per partition from the positions ``bounds`` (``0 .. n``)."""
        out = []
        for a, b in itertools.pairwise(bounds):
            out.append(
                [
                    (p, max(a, self.offset[p]) - self.offset[p], min(b, self.offset[p] + sizes[p]) - self.offset[p])
                    for p in self.order
                    if self.offset[p] < b and a < self.offset[p] + sizes[p]
                ]
            )
        return out


def units_of(
    comps: list[tuple[str, ...]],
    recurrent: list[bool],
    sizes: Mapping[str, int],
    widths: Mapping[str, int],
    caps: Mapping[str, int] | None = None,
) -> Units:
    order = [p for members in comps for p in members]
    offset, pos = {}, 0
    for p in order:
        offset[p] = pos
        pos += sizes[p]
    allowed = np.zeros(pos + 1, bool)
    allowed[[0, pos]] = True
    at = 0
    for members, rec in zip(comps, recurrent):
        end = at + sum(sizes[p] for p in members)
        allowed[at] = True
        if not rec:
            allowed[at:end] = True
        at = end
    circuits = np.concatenate([np.full(sizes[p], widths[p], np.int64) for p in order])
    cap = None
    if caps:
        big = np.iinfo(np.int64).max
        cap = np.concatenate([np.full(sizes[p], caps.get(p, big), np.int64) for p in order])
    return Units(order, offset, circuits, allowed, cap)


def _fits(units: Units, cum: np.ndarray, a: np.ndarray, b: int, limit: int) -> np.ndarray:
    """Which partitions ``[a, b)`` (``a`` an array of starts) hold at most ``limit`` circuits and their caps."""
    ok = cum[b] - cum[a] <= limit
    if units.cap is not None and len(a):
        lo = int(a.min())
        suffix = np.minimum.accumulate(units.cap[lo:b][::-1])[::-1]  # suffix[k]: min cap of lo+k .. b-1
        ok &= cum[b] - cum[a] <= suffix[a - lo]
    return ok


def fewest(units: Units, limit: int) -> list[int]:
    """The fewest contiguous partitions (each as full as possible: optimal for a fixed order), as positions."""
    cum = np.concatenate([[0], np.cumsum(units.circuits)])
    bounds = [0]
    while bounds[-1] < units.n:
        b = bounds[-1]
        e = int(np.searchsorted(cum, cum[b] + limit, side="right")) - 1
        if units.cap is not None:  # a neuron's cap also bounds the partition holding it
            room = np.minimum.accumulate(units.cap[b:e])
            over = np.flatnonzero(cum[b + 1 : e + 1] - cum[b] > room)
            if len(over):
                e = b + int(over[0])
        while e > b and not units.allowed[e]:
            e -= 1
        if e == b:  # a recurrent subnetwork larger than a chip: refused before packing
            raise AssertionError("no admissible cut")
        bounds.append(e)
    return bounds


def _linker(network: Network, units: Units) -> Any:
    """``links(u)``: synapses between neuron ``u`` and every neuron (either direction), as an ``[n]`` vector."""
    blocks: dict[str, list[tuple[np.ndarray, str, bool]]] = {}
    silent = {n.name for n in network.nodes if n.kind == "li"}
    for e in network.edges:
        if e.source in units.offset and e.target in units.offset and e.source not in silent:
            m = np.ones(e.weight.shape, np.int64) if e.mask is None else np.asarray(e.mask, np.int64)
            blocks.setdefault(e.source, []).append((m, e.target, True))
            blocks.setdefault(e.target, []).append((m, e.source, False))
    starts = np.array([units.offset[p] for p in units.order])

    def links(u: int) -> np.ndarray:
        k = int(np.searchsorted(starts, u, side="right")) - 1
        pop = units.order[k]
        i = u - units.offset[pop]
        out = np.zeros(units.n, np.int64)
        for m, other, outgoing in blocks.get(pop, []):
            row = m[i] if outgoing else m[:, i]
            out[units.offset[other] : units.offset[other] + len(row)] += row
        return out

    return links


def fewest_cut(network: Network, units: Units, limit: int, k_max: int, k_fix: int | None) -> list[int]:
    """Contiguous partitions (at most ``k_max``, exactly ``k_fix`` if given) that keep the most synapses
    inside partitions, i.e. cut the fewest; ties go to fewer partitions. Dynamic programming over the
    cut positions: ``best[k, b]`` = most internal synapses of ``k`` partitions covering neurons ``0 .. b-1``."""
    n = units.n
    cum = np.concatenate([[0], np.cumsum(units.circuits)])
    links = _linker(network, units)
    best = np.full((k_max + 1, n + 1), -1, np.int64)
    arg = np.zeros((k_max + 1, n + 1), np.int64)
    best[0, 0] = 0
    inside = np.zeros(n + 1, np.int64)  # inside[a]: synapses among neurons a .. b-1
    for b in range(1, n + 1):
        seg = links(b - 1)[:b]
        inside[:b] += np.cumsum(seg[::-1])[::-1]
        if not units.allowed[b]:
            continue
        lo = int(np.searchsorted(cum, cum[b] - limit, side="left"))
        cand = np.arange(lo, b)[units.allowed[lo:b]]
        cand = cand[_fits(units, cum, cand, b, limit)]
        for k in range(1, k_max + 1):
            prev = best[k - 1, cand]
            if not len(cand) or prev.max() < 0:
                continue
            val = np.where(prev >= 0, prev + inside[cand], -1)
            j = int(np.argmax(val))
            best[k, b], arg[k, b] = val[j], cand[j]
    ks = [k_fix] if k_fix is not None else [k for k in range(1, k_max + 1) if best[k, n] >= 0]
    k = max(ks, key=lambda k: (best[k, n], -k))
    bounds = [n]
    while k:
        bounds.append(int(arg[k, bounds[-1]]))
        k -= 1
    return bounds[::-1]
