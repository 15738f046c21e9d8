"""Cutting a network that does not fit one BrainScaleS-2 chip into chip-sized partitions (planning only).

:func:`plan_partitions` is a pure function of an IR network, the fan-in of every neuron in synapse slots
(what ``split-sign`` and ``quantize`` decided) and a :class:`~.chip.ChipSpec`. It returns a
:class:`PartitionPlan`: one sub-network per partition and the tables that map every neuron and every
block of every projection back to the original network.

The rule follows partitioned emulation on BrainScaleS-2 (Arnold et al. 2024, arXiv 2401.16840): the
partitions run one after another and the spikes recorded from one are replayed as input spikes of the
later ones, so every edge between partitions must point forward. That is possible iff every strongly
connected component (a recurrent subnetwork; its spikes feed back within one run) fits one chip and
every neuron's fan-in fits one chip. Feed-forward populations are kept whole where they fit and split
by neurons where they do not; each part of a split population keeps its whole fan-in.

In a partition, a projection whose source lives in an earlier partition comes from a *stand-in*: an
input population with the name of the source (slice), fed with its recorded spikes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import JsonValue

from ...ir import Edge, InputNode, Network
from ._annotations import ranges
from ._cuts import EXACT_NEURONS, components, fewest, fewest_cut, units_of
from .chip import ChipSpec
from .config import CutSource, HardwareConfig, PartitionedConfig, PopulationSlice, ProjectionPiece
from .errors import ResourceError, Violation

__all__ = ["OBJECTIVES", "Objective", "PartitionPlan", "circuit_widths", "plan_partitions"]

Objective = Literal["fewest-partitions", "fewest-cut-synapses"]
OBJECTIVES: tuple[str, ...] = ("fewest-partitions", "fewest-cut-synapses")
PINNING_KEYS = ("bss2.placement", "bss2.readout")  # metadata naming circuits of one chip


@dataclass(frozen=True)
class PartitionPlan:
    """Partitions of ``network``: ``parts[i]`` is the sub-network run in partition ``i`` (topological order).

    ``slices``, ``pieces`` and ``cuts`` are the tables of :class:`~.config.PartitionedConfig`;
    ``circuits[i]`` is partition ``i``'s demand of neuron circuits, ``limit`` a chip's.
    """

    network: Network
    parts: tuple[Network, ...]
    slices: tuple[PopulationSlice, ...]
    pieces: tuple[ProjectionPiece, ...]
    cuts: tuple[CutSource, ...]
    circuits: tuple[int, ...]
    limit: int
    objective: str
    widths: Mapping[str, int] = dataclasses.field(default_factory=dict)  # circuits per neuron, per population

    @property
    def n_parts(self) -> int:
        """Number of partitions (1: the network fits one chip)."""
        return len(self.parts)

    @property
    def cut_synapses(self) -> int:
        """Synapses whose source lives in an earlier partition."""
        return sum(c.synapses for c in self.cuts)

    def skewed(self) -> dict[str, tuple[int, int]]:
        """Slices whose inputs crossed different numbers of chip boundaries on their way: ``{slice: (fewest,
        most)}`` crossings. In multi-chip mode every crossing adds the inter-chip latency, so these neurons
        see their inputs shifted against each other (one hidden layer split over chips, read by one output
        partition); a deeper network cut between layers has none."""
        hops = {s.name: 0 for s in self.slices}
        for _ in range(len(self.slices)):  # longest path in crossings; the cuts point forward
            changed = False
            for q in self.pieces:
                h = hops.get(q.source, 0) + int(q.cut)
                if h > hops[q.target]:
                    hops[q.target], changed = h, True
            if not changed:
                break
        arrive: dict[str, set[int]] = {}
        for q in self.pieces:
            arrive.setdefault(q.target, set()).add(hops.get(q.source, 0) + int(q.cut))
        return {t: (min(a), max(a)) for t, a in arrive.items() if len(a) > 1}

    def text(self) -> str:
        """One line per partition: its populations (index ranges) and circuits; then the cuts."""
        lines = [
            f"{self.n_parts} partition(s) ({self.objective}), {self.cut_synapses} synapses cut, "
            f"{len(self.cuts)} cut source(s)"
        ]
        for i in range(self.n_parts):
            pops = ", ".join(
                f"{s.population}[{s.start}-{s.stop - 1}]" if s.name != s.population else s.population
                for s in self.slices
                if s.part == i
            )
            lines.append(f"  partition {i}: {pops} ({self.circuits[i]}/{self.limit} circuits)")
        lines.extend(f"  cut {c.name}: partition {c.source_part} -> {c.target_part}" for c in self.cuts)
        return "\n".join(lines)

    def config(
        self, parts: Sequence[HardwareConfig], chips: int = 1, inter_chip_latency: float = 0.0
    ) -> PartitionedConfig:
        """The artifact: one configuration per partition (``parts``) and the cut table."""
        return PartitionedConfig(
            network=self.network.name,
            mode="sequential" if chips == 1 else "multi-chip",
            chips=chips,
            inter_chip_latency=inter_chip_latency if chips > 1 else 0.0,
            slices=self.slices,
            pieces=self.pieces,
            cuts=self.cuts,
            parts=tuple(parts),
        )

    def join(self, parts: Sequence[Network]) -> Network:
        """The whole network again from one network per partition of the same plan (e.g. each partition's
        ``dequantized_network``): every block of every projection and every slice's parameters put back."""
        by_name = [{n.name: n for n in p.nodes} for p in parts]
        weights = [{k: e for k, e in zip(p.edge_keys(), p.edges)} for p in parts]
        edges = []
        for edge, key in zip(self.network.edges, self.network.edge_keys()):
            w = np.array(edge.weight, np.float64)  # a block with no synapse has no piece: its weights stay
            for piece in (q for q in self.pieces if q.projection == key):
                (a, b), (c, d) = piece.rows, piece.cols
                w[a:b, c:d] = weights[piece.part][piece.key].weight
            edges.append(edge.model_copy(update={"weight": w}))
        nodes = []
        for node in self.network.nodes:
            own = [s for s in self.slices if s.population == node.name]
            if node.kind == "input" or not own:
                nodes.append(node)
            elif len(own) == 1:
                nodes.append(by_name[own[0].part][own[0].name].model_copy(update={"name": node.name}))
            else:
                nodes.append(_join_nodes(node, [by_name[s.part][s.name] for s in own]))
        meta = dict(parts[0].metadata) if parts else {}
        meta.pop("bss2.partition", None)
        meta.pop("bss2.placement", None)  # the plan's widths of partition 0's slices
        return self.network.replace(nodes=tuple(nodes), edges=tuple(edges), metadata={**self.network.metadata, **meta})


def _join_nodes(node: Any, pieces: Sequence[Any]) -> Any:
    """One population from its slices (in neuron order): per-neuron values concatenated, kept scalar when uniform."""
    data: dict[str, Any] = {"name": node.name, "size": node.size}
    first = pieces[0]
    for f in type(first).model_fields:
        if f in data:
            continue
        values = [getattr(p, f) for p in pieces]
        if all(isinstance(v, float | np.ndarray) and not isinstance(v, bool) for v in values):
            joined = np.concatenate(
                [np.broadcast_to(np.asarray(v, np.float64), (p.size,)) for v, p in zip(values, pieces)]
            )
            data[f] = float(joined[0]) if np.all(joined == joined[0]) else joined
        else:
            data[f] = values[0]
    return type(first).model_validate(data)


def circuit_widths(
    network: Network,
    fan_in: Mapping[str, np.ndarray],
    chip: ChipSpec,
    max_circuits_per_neuron: int,
    row_slack: int = 0,
) -> dict[str, int]:
    """Circuits per neuron of every placed population, as ``place`` chooses them (fan-in over 256 rows).

    ``row_slack`` rows of every circuit are left free in the count (a re-plan after a circuit's rows
    overflowed in routing); a width the network's ``bss2.placement`` metadata fixes is kept.
    """
    rows = max(1, chip.rows_per_hemisphere - max(0, row_slack))
    fixed = _fixed_widths(network)
    out = {}
    for node in network.nodes:
        if node.kind == "input":
            continue
        slots = np.asarray(fan_in.get(node.name, np.zeros(node.size)))
        need = -(-int(slots.max(initial=0)) // rows)
        out[node.name] = fixed.get(node.name, int(min(max(1, need), max(1, max_circuits_per_neuron))))
    return out


def _fixed_widths(network: Network) -> dict[str, int]:
    spec = network.metadata.get("bss2.placement")
    if not isinstance(spec, dict):
        return {}
    out = {}
    for p, c in spec.items():
        w = c.get("circuits_per_neuron") if isinstance(c, dict) else None
        if isinstance(w, int) and not isinstance(w, bool) and w >= 1:  # place reports a bad value
            out[p] = w
    return out


def _pins_circuits(network: Network, key: str) -> bool:
    """Whether ``metadata[key]`` names circuits or hemispheres of one chip (a width alone carries over)."""
    spec = network.metadata.get(key)
    if key != "bss2.placement" or not isinstance(spec, dict):
        return True
    return any(not isinstance(c, dict) or set(c) - {"circuits_per_neuron"} for c in spec.values())


def _who(sizes: Mapping[str, int], widths: Mapping[str, int], pops: Sequence[str]) -> tuple[str, ...]:
    # place's wording, so that a refusal reads the same from either pass
    return tuple(f"{p} ({sizes[p]} neurons" + (f" x {widths[p]} circuits)" if widths[p] > 1 else ")") for p in pops)


def _no_cut(
    network: Network,
    fan_in: Mapping[str, np.ndarray],
    chip: ChipSpec,
    widths: Mapping[str, int],
    comps: list[tuple[str, ...]],
    recurrent: list[bool],
    max_circuits_per_neuron: int,
) -> list[Violation]:
    """Why no partitioning exists: recurrent subnetworks or single neurons' fan-in larger than one chip."""
    sizes = {n.name: n.size for n in network.nodes}
    sources: dict[str, list[str]] = {}
    for e in network.edges:
        sources.setdefault(e.target, []).append(e.source)
    out: list[Violation] = []
    for node in network.nodes:
        # a width fixed in the metadata is what place gives the neuron, beyond max_circuits_per_neuron too
        limit = chip.rows_per_hemisphere * max(1, max_circuits_per_neuron, widths.get(node.name, 1))
        slots = np.asarray(fan_in.get(node.name, np.zeros(0)))
        bad = np.flatnonzero(slots > limit)
        if node.kind != "input" and len(bad):
            out.append(
                Violation(
                    f"synapses into neuron {node.name}[{ranges(bad)}]",
                    int(slots.max()),
                    limit,
                    tuple(dict.fromkeys(sources.get(node.name, []))),
                    check=5,
                    detail=f"{chip.rows_per_hemisphere} rows x {limit // chip.rows_per_hemisphere} circuits per neuron",
                    hint="a neuron's inputs must all reach it on one chip, so no cut helps; reduce its fan-in "
                    "(or split-sign{signs=used})",
                )
            )
    for members, rec in zip(comps, recurrent):
        demand = sum(sizes[p] * widths[p] for p in members)
        if rec and demand > chip.circuits:
            out.append(
                Violation(
                    f"neuron circuits of the recurrent subnetwork {{{', '.join(members)}}}",
                    demand,
                    chip.circuits,
                    _who(sizes, widths, members),
                    check=1,
                    hint="a recurrent subnetwork cannot be cut (its spikes feed back within one run), so it "
                    "must fit one chip: shrink it",
                )
            )
    for key in PINNING_KEYS:
        if key in network.metadata and _pins_circuits(network, key):
            out.append(
                Violation(
                    f"metadata['{key}']",
                    detail="names circuits of one chip, which a partitioned network cannot keep",
                    hint="remove it, or make the network fit one chip",
                )
            )
    return out


def plan_partitions(
    network: Network,
    fan_in: Mapping[str, np.ndarray],
    chip: ChipSpec,
    *,
    max_partitions: int = 1,
    objective: str = "fewest-partitions",
    chips: int = 1,
    max_circuits_per_neuron: int = 4,
    row_slack: int = 0,
    caps: Mapping[str, int] | None = None,
) -> PartitionPlan:
    """Cut ``network`` into partitions that each fit ``chip`` (one partition when it fits).

    The partitions are contiguous ranges of one topological order of the neurons (recurrent subnetworks
    whole, populations in IR order within that). ``objective="fewest-partitions"``: the fewest such
    partitions and, among those, the fewest cut synapses; ``"fewest-cut-synapses"``: the fewest cut
    synapses within ``max_partitions`` (ties: fewer partitions); both exact for that order (dynamic
    programming; beyond 5,000 neurons just the fewest partitions). ``fan_in[pop][i]`` counts the synapse
    slots into neuron ``i`` of ``pop`` (both signs, split copies).

    ``row_slack`` and ``caps`` leave room when a plan that fits by count did not place or route
    (:func:`~snncomp.targets.bss2.passes.partition.plan_and_lower` re-plans with them):
    ``row_slack`` rows per circuit are not counted when sizing multi-circuit neurons, and the partition
    holding population ``p`` holds at most ``caps[p]`` circuits (default: the chip's). Every partition's
    sub-network carries its populations' widths as ``bss2.placement`` ``circuits_per_neuron``, so
    ``place`` sizes them alike.
    Raises :class:`~.errors.ResourceError` naming every reason when the network needs more than
    ``max_partitions`` partitions (or more than ``chips`` chips where ``chips > 1``), or when no cut exists.
    """
    if objective not in OBJECTIVES:
        raise ResourceError(
            "invalid partition option", [Violation("objective", detail=f"must be one of {', '.join(OBJECTIVES)}")]
        )
    sizes = {n.name: n.size for n in network.nodes}
    widths = circuit_widths(network, fan_in, chip, max_circuits_per_neuron, row_slack)
    total = sum(sizes[p] * w for p, w in widths.items())
    caps = {p: int(c) for p, c in (caps or {}).items() if p in widths and c < chip.circuits}
    room = min([chip.circuits, *caps.values()])
    if total <= room:
        whole = tuple(PopulationSlice(population=p, start=0, stop=sizes[p], part=0, name=p) for p in widths)
        return PartitionPlan(network, (network,), whole, (), (), (total,), chip.circuits, objective, widths)
    comps, recurrent = components(network)
    blocked = _no_cut(network, fan_in, chip, widths, comps, recurrent, max_circuits_per_neuron)
    circuits = Violation(
        "neuron circuits",
        total,
        chip.circuits,
        _who(sizes, widths, list(widths)),
        check=1,
        hint="reduce population sizes (or the fan-in of multi-circuit neurons)",
    )
    if blocked:
        raise ResourceError(
            "the network does not fit on the chip, and no cut into chip-sized partitions exists", [circuits, *blocked]
        )
    for members, rec in zip(comps, recurrent):
        # a cap never goes below one neuron, nor below a recurrent subnetwork (never cut) that holds it
        need = sum(sizes[p] * widths[p] for p in members) if rec else 0
        for p in members:
            if p in caps:
                caps[p] = max(caps[p], need, widths[p])
    room = chip.circuits
    units = units_of(comps, recurrent, sizes, widths, caps)
    least = fewest(units, room)
    n = len(least) - 1
    more = f"partition{{max_partitions={n}}} (compile option max_partitions={n})"
    if max_partitions <= 1:
        hint = f"{circuits.hint}, or run it in {n} partitions one after another: {more}"
        raise ResourceError("the network does not fit on the chip", [dataclasses.replace(circuits, hint=hint)])
    problems = []
    if n > max_partitions:
        problems.append(
            Violation(
                "partitions",
                n,
                max_partitions,
                detail=f"{total} neuron circuits in chips of {chip.circuits}"
                + (
                    " (the partitions of "
                    + ", ".join(f"{p} hold at most {c}" for p, c in caps.items())
                    + " to leave room for placement and routing)"
                    if caps
                    else ""
                ),
                hint=f"allow {more}, or reduce population sizes",
            )
        )
    if chips > 1 and n > chips:
        problems.append(
            Violation(
                "emulated chips",
                n,
                chips,
                hint=f"give one chip per partition (chips={n}), or run the partitions one after another (chips=1)",
            )
        )
    if problems:
        raise ResourceError(f"the network does not fit in {max_partitions} partition(s)", problems)
    bounds = least
    if units.n <= EXACT_NEURONS:
        if objective == "fewest-partitions":
            bounds = fewest_cut(network, units, room, n, n)
        else:
            k_max = max_partitions if chips == 1 else min(max_partitions, chips)
            bounds = fewest_cut(network, units, room, min(k_max, units.n), None)
    return _build(network, units.parts(bounds, sizes), widths, chip.circuits, objective)


def _slice_node(node: Any, start: int, stop: int, name: str) -> Any:
    data = {}
    for f in type(node).model_fields:
        v = getattr(node, f)
        data[f] = v[start:stop] if isinstance(v, np.ndarray) and v.shape == (node.size,) else v
    data.update(name=name, size=stop - start)
    return type(node).model_validate(data)


def _build(
    network: Network, packed: list[list[tuple[str, int, int]]], widths: Mapping[str, int], limit: int, objective: str
) -> PartitionPlan:
    """The sub-networks and tables of a packing."""
    nodes = {n.name: n for n in network.nodes}
    taken = set(nodes)
    count: dict[str, int] = {}
    for part in packed:
        for pop, _a, _b in part:
            count[pop] = count.get(pop, 0) + 1
    slices: list[PopulationSlice] = []
    by_pop: dict[str, list[PopulationSlice]] = {}
    for i, part in enumerate(packed):
        for pop, a, b in part:
            name = pop
            if count[pop] > 1:
                name = f"{pop}.{len(by_pop.get(pop, []))}"
                while name in taken:
                    name += "_"
                taken.add(name)
            s = PopulationSlice(population=pop, start=a, stop=b, part=i, name=name)
            slices.append(s)
            by_pop.setdefault(pop, []).append(s)
    pieces: list[ProjectionPiece] = []
    edges: list[list[Edge]] = [[] for _ in packed]
    cut_of: dict[tuple[str, int], dict[str, Any]] = {}
    for edge, key in zip(network.edges, network.edge_keys()):
        src_node = nodes[edge.source]
        if src_node.kind == "li":
            continue  # an li readout never spikes: its projections carry no events, on one chip or across
        sources = (
            [
                PopulationSlice.model_construct(
                    population=edge.source, start=0, stop=src_node.size, part=-1, name=edge.source
                )
            ]
            if src_node.kind == "input"
            else by_pop[edge.source]
        )
        for t in by_pop[edge.target]:
            for s in sources:
                rows, cols = slice(s.start, s.stop), slice(t.start, t.stop)
                mask = None if edge.mask is None else np.asarray(edge.mask)[rows, cols]
                synapses = (s.stop - s.start) * (t.stop - t.start) if mask is None else int(mask.sum())
                if synapses == 0:
                    continue  # nothing of this block is connected: no stand-in for it
                whole = (s.stop - s.start, t.stop - t.start) == edge.weight.shape
                piece_key = key if whole else f"{key}[{s.start}:{s.stop},{t.start}:{t.stop}]"
                cut = s.part >= 0 and s.part != t.part
                edges[t.part].append(
                    Edge(
                        source=s.name,
                        target=t.name,
                        weight=np.asarray(edge.weight)[rows, cols],
                        mask=mask,
                        delay=edge.delay,
                        name=piece_key,
                    )
                )
                pieces.append(
                    ProjectionPiece(
                        projection=key,
                        part=t.part,
                        key=piece_key,
                        source=s.name,
                        target=t.name,
                        rows=(s.start, s.stop),
                        cols=(t.start, t.stop),
                        synapses=synapses,
                        cut=cut,
                    )
                )
                if cut:
                    entry = cut_of.setdefault((s.name, t.part), {"slice": s, "projections": [], "synapses": 0})
                    if key not in entry["projections"]:
                        entry["projections"].append(key)
                    entry["synapses"] += synapses
    cuts = tuple(
        CutSource(
            name=e["slice"].name,
            population=e["slice"].population,
            start=e["slice"].start,
            stop=e["slice"].stop,
            source_part=e["slice"].part,
            target_part=part,
            projections=tuple(e["projections"]),
            synapses=e["synapses"],
        )
        for (_name, part), e in sorted(cut_of.items(), key=lambda kv: (kv[0][1], kv[1]["slice"].part, kv[0][0]))
    )
    meta = {k: v for k, v in network.metadata.items() if k not in PINNING_KEYS}
    parts = []
    for i in range(len(packed)):
        # the widths the plan counted, so that place makes the same neurons (not its own fan-in rule)
        pinned: dict[str, JsonValue] = {
            s.name: {"circuits_per_neuron": int(widths[s.population])} for s in slices if s.part == i
        }
        used = {e.source for e in edges[i]}
        inputs = [n for n in network.nodes if n.kind == "input" and n.name in used]
        stand_ins = [InputNode(name=c.name, size=c.stop - c.start) for c in cuts if c.target_part == i]
        own = [
            _slice_node(nodes[s.population], s.start, s.stop, s.name) if s.name != s.population else nodes[s.name]
            for s in slices
            if s.part == i
        ]
        parts.append(
            Network(
                name=f"{network.name}.part{i}",
                nodes=(*inputs, *stand_ins, *own),
                edges=tuple(edges[i]),
                outputs=tuple(n.name for n in own),
                metadata={
                    **meta,
                    "bss2.placement": pinned,
                    "bss2.partition": {"of": network.name, "index": i, "count": len(packed)},
                },
            )
        )
    circuits = tuple(
        sum((s.stop - s.start) * widths[s.population] for s in slices if s.part == i) for i in range(len(packed))
    )
    return PartitionPlan(
        network, tuple(parts), tuple(slices), tuple(pieces), cuts, circuits, limit, objective, dict(widths)
    )
