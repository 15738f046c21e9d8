"""``place``: populations -> neuron circuits, routing-aware (or naive first-fit for comparison).

One topic, kept whole (~570 lines): the capacity check, pinned constraints, the first fit and the
routing-aware search with its hill climb share one placement state and one cost, and read best in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
import numpy as np

from ....passes import Pass, PassContext, annotate_graph, annotate_node, register
from .._annotations import PlacementSummary, PopulationPlacement
from .._plan import plan_rows
from .._problem import Placement, Problem, chip_of
from ..errors import ResourceError, Violation

__all__ = ["METADATA_KEY", "Place", "parse_constraints"]

METADATA_KEY = "bss2.placement"


@dataclass
class _Constraint:
    hemisphere: int | None = None
    circuits: list[int] | None = None
    width: int | None = None


def parse_constraints(metadata: dict[str, Any], problem: Problem) -> tuple[dict[str, _Constraint], list[Violation]]:
    """Read ``metadata["bss2.placement"]``: ``{pop: {"hemisphere": h, "circuits": [..], "circuits_per_neuron": k}}``."""
    raw = metadata.get(METADATA_KEY)
    out: dict[str, _Constraint] = {}
    bad: list[Violation] = []
    if raw is None:
        return out, bad
    chip = problem.chip
    where = f"metadata['{METADATA_KEY}']"
    if not isinstance(raw, dict):
        return out, [Violation(f"{where}", detail="must be an object mapping population names to constraints", check=2)]
    for pop, spec in raw.items():
        if pop not in problem.kinds or problem.kinds[pop] == "input":
            bad.append(Violation(f"{where}['{pop}']", detail="no such neuron population", check=2))
            continue
        if not isinstance(spec, dict) or set(spec) - {"hemisphere", "circuits", "circuits_per_neuron"}:
            bad.append(
                Violation(
                    f"{where}['{pop}']",
                    detail="expected an object with keys 'hemisphere', 'circuits' and/or 'circuits_per_neuron'",
                    check=2,
                )
            )
            continue
        c = _Constraint()
        h = spec.get("hemisphere")
        if h is not None:
            if not (isinstance(h, int) and 0 <= h < chip.hemispheres):
                bad.append(
                    Violation(f"{where}['{pop}'].hemisphere", detail=f"must be 0..{chip.hemispheres - 1}", check=2)
                )
            else:
                c.hemisphere = h
        w = spec.get("circuits_per_neuron")
        if w is not None:
            if not (isinstance(w, int) and 1 <= w <= chip.columns):
                bad.append(
                    Violation(f"{where}['{pop}'].circuits_per_neuron", detail="must be a positive integer", check=2)
                )
            else:
                c.width = w
        circ = spec.get("circuits")
        if circ is not None:
            size = problem.sizes[pop]
            if not (isinstance(circ, list) and len(circ) == size and all(isinstance(x, int) for x in circ)):
                bad.append(
                    Violation(
                        f"{where}['{pop}'].circuits",
                        detail=f"must list {size} circuit numbers (hemisphere*{chip.columns} + column), one per neuron",
                        check=2,
                    )
                )
            elif any(not 0 <= x < chip.circuits for x in circ):
                bad.append(
                    Violation(f"{where}['{pop}'].circuits", detail=f"numbers must be 0..{chip.circuits - 1}", check=2)
                )
            else:
                c.circuits = list(circ)
        out[pop] = c
    return out, bad


@register
@dataclass(frozen=True)
class Place(Pass):
    """Assign every neuron a logical neuron of ``width`` adjacent circuits on one hemisphere.

    A neuron whose fan-in (slots, both signs, split copies) exceeds one circuit's 256 rows gets
    ``ceil(fan_in / 256)`` circuits (at most ``max_circuits_per_neuron``); its inputs are spread over them.

    ``strategy=routing-aware`` (default) decides, in this order:

    1. the hemisphere of every population (the rows of its inputs live there), greedily balancing the
       row demand of the two synapse arrays (a population too large for one hemisphere is split);
    2. the event output (column block) of every *source* neuron, one at a time, choosing the block whose
       PADI bus ends up least loaded in the hemispheres of the neuron's targets, with the exact
       "max over columns, per sign" row model that ``route`` uses; neurons that feed no other neuron
       fill the remaining columns;
    3. if the exact row plan still exceeds a limit, a hill climb moves whole populations between
       hemispheres while that lowers the overflow.

    ``strategy=first-fit`` is hxtorch's placer: neurons in creation order take the first free anchor in
    row-major circuit order. It is kept to show what routing-awareness buys (it cannot route 25 -> 120 -> 3).

    Users constrain placement with the network metadata key ``bss2.placement``:
    ``{"pop": {"hemisphere": 1}}`` pins a population to a hemisphere, ``{"pop": {"circuits": [...]}}`` gives
    the anchor circuit of each neuron (``hemisphere * 256 + column``, as halco's ``AtomicNeuronOnDLS``), and
    ``"circuits_per_neuron": k`` fixes the width. Both strategies honour them; collisions are errors.
    """

    name = "place"
    requires = ("quantized",)
    ensures = ("placement",)

    strategy: Literal["routing-aware", "first-fit"] = "routing-aware"
    max_circuits_per_neuron: int = 4

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        if graph.graph["ann"].get("partitioned") is not None:
            return graph.copy()  # several partitions: the 'partition' pass lowered each on its own
        g = graph.copy()
        chip = chip_of(g, ctx.options)
        problem = Problem.from_graph(g, chip)
        constraints, bad = parse_constraints(g.graph["metadata"], problem)
        if bad:
            raise ResourceError("invalid placement constraints", bad)
        widths = self._widths(problem, constraints)
        self._check_capacity(problem, widths)
        placement = Placement.empty(problem.n_neurons)
        for pop, w in widths.items():
            placement.width[problem.ids(pop)] = w
        occupied = np.zeros((chip.hemispheres, chip.columns), bool)
        self._pin(problem, constraints, placement, occupied)

        if self.strategy == "first-fit":
            placement = self._first_fit(problem, constraints, placement, occupied)
            plan = plan_rows(problem, placement)
        else:
            placement, plan = self._routing_aware(problem, constraints, placement, occupied)

        for pop in problem.pops:
            if problem.kinds[pop] == "input":
                continue
            ids = problem.ids(pop)
            c = constraints.get(pop)
            annotate_node(
                g,
                pop,
                placement=PopulationPlacement(
                    hemisphere=placement.hemisphere[ids].copy(),
                    column=placement.column[ids].copy(),
                    width=int(widths[pop]),
                    pinned=c is not None and (c.circuits is not None or c.hemisphere is not None),
                ),
            )
        used = [int(placement.width[placement.hemisphere == h].sum()) for h in range(chip.hemispheres)]
        summary = PlacementSummary(
            strategy=self.strategy,
            circuits=tuple(used),
            rows=tuple(tuple(int(x) for x in r) for r in plan.bus_rows),
            feasible=not plan.violations,
        )
        annotate_graph(g, placement=summary)
        ctx.remark(summary.text())
        if plan.violations:
            ctx.remark(f"the placement exceeds {len(plan.violations)} routing limit(s); 'route' will list them")
        return g

    # -- sizes and pinned circuits -----------------------------------------------------------------------------
    def _widths(self, problem: Problem, constraints: dict[str, _Constraint]) -> dict[str, int]:
        rows = problem.chip.rows_per_hemisphere
        fan_in = problem.fan_in()
        out = {}
        for pop in problem.pops:
            if problem.kinds[pop] == "input":
                continue
            c = constraints.get(pop)
            if c is not None and c.width is not None:
                out[pop] = c.width
                continue
            need = int(-(-int(fan_in[problem.ids(pop)].max()) // rows)) if problem.sizes[pop] else 1
            out[pop] = int(min(max(1, need), max(1, self.max_circuits_per_neuron)))
        return out

    @staticmethod
    def _check_capacity(problem: Problem, widths: dict[str, int]) -> None:
        chip = problem.chip
        demand = sum(problem.sizes[p] * w for p, w in widths.items())
        if demand > chip.circuits:
            who = tuple(
                f"{p} ({problem.sizes[p]} neurons" + (f" x {w} circuits)" if w > 1 else ")") for p, w in widths.items()
            )
            raise ResourceError(
                "the network does not fit on the chip",
                [
                    Violation(
                        "neuron circuits",
                        demand,
                        chip.circuits,
                        who,
                        check=1,
                        hint="reduce population sizes (or the fan-in of multi-circuit neurons)",
                    )
                ],
            )

    @staticmethod
    def _pin(problem: Problem, constraints: dict[str, _Constraint], placement: Placement, occupied: np.ndarray) -> None:
        chip = problem.chip
        owner: dict[tuple[int, int], str] = {}
        bad: list[Violation] = []
        for pop, c in constraints.items():
            if c.circuits is None:
                continue
            w = int(placement.width[problem.first[pop]])
            for i, enum in enumerate(c.circuits):
                h, col = divmod(enum, chip.columns)
                if c.hemisphere is not None and h != c.hemisphere:
                    bad.append(
                        Violation(f"circuit {enum} of {pop}[{i}]", detail=f"not in hemisphere {c.hemisphere}", check=2)
                    )
                if col + w > chip.columns:
                    bad.append(
                        Violation(
                            f"circuit {enum} of {pop}[{i}]", detail=f"{w} circuits do not fit in the row", check=2
                        )
                    )
                    continue
                for k in range(w):
                    cell = (h, col + k)
                    if cell in owner:
                        bad.append(
                            Violation(
                                f"circuit h{h}:c{col + k}",
                                detail=f"requested by both {owner[cell]} and {pop}[{i}]",
                                check=2,
                                hint="explicit placement constraints must not overlap",
                            )
                        )
                    owner[cell] = f"{pop}[{i}]"
                nid = problem.first[pop] + i
                placement.hemisphere[nid], placement.column[nid] = h, col
        if bad:
            raise ResourceError("placement constraints collide", bad)
        for h, col in owner:
            occupied[h, col] = True

    # -- first fit ---------------------------------------------------------------------------------------------
    @staticmethod
    def _first_free(occupied: np.ndarray, h: int, w: int, lo: int = 0, hi: int | None = None) -> int:
        """First column ``c`` in ``[lo, hi)`` with ``w`` free circuits ``c .. c+w-1`` in hemisphere ``h`` (or -1)."""
        row = occupied[h]
        hi = len(row) if hi is None else min(hi, len(row))
        last = min(hi, len(row) - w + 1)
        if last <= lo:
            return -1
        free = ~row
        if w == 1:
            idx = np.flatnonzero(free[lo:last])
        else:
            runs = np.convolve(free.astype(np.int64), np.ones(w, np.int64), mode="valid")  # runs[c] = free in c..c+w-1
            idx = np.flatnonzero(runs[lo:last] == w)
        return int(lo + idx[0]) if len(idx) else -1

    @staticmethod
    def _last_free(occupied: np.ndarray, h: int, w: int) -> int:
        """Last column ``c`` with ``w`` free circuits ``c .. c+w-1`` in hemisphere ``h`` (or -1)."""
        free = (~occupied[h]).astype(np.int64)
        if len(free) < w:
            return -1
        runs = np.convolve(free, np.ones(w, np.int64), mode="valid")
        idx = np.flatnonzero(runs == w)
        return int(idx[-1]) if len(idx) else -1

    def _first_fit(
        self, problem: Problem, constraints: dict[str, _Constraint], placement: Placement, occupied: np.ndarray
    ) -> Placement:
        chip = problem.chip
        for nid in problem.placed_ids():
            if placement.hemisphere[nid] >= 0:
                continue
            pop = problem.pops[problem.pop_of[nid]]
            c = constraints.get(pop)
            w = int(placement.width[nid])
            rows = [c.hemisphere] if c is not None and c.hemisphere is not None else range(chip.hemispheres)
            for h in rows:
                col = self._first_free(occupied, h, w)
                if col >= 0:
                    placement.hemisphere[nid], placement.column[nid] = h, col
                    occupied[h, col : col + w] = True
                    break
            else:
                raise self._no_room(problem, nid, w)
        return placement

    @staticmethod
    def _no_room(problem: Problem, nid: int, w: int) -> ResourceError:
        return ResourceError(
            "the network does not fit on the chip",
            [
                Violation(
                    f"free circuits for {problem.name(nid)}",
                    detail=f"no {w} adjacent free circuits left in the allowed hemisphere(s)",
                    responsible=(problem.pops[problem.pop_of[nid]],),
                    check=1,
                    hint="relax the population's hemisphere constraint or reduce sizes",
                )
            ],
        )

    # -- routing-aware -----------------------------------------------------------------------------------------
    def _routing_aware(
        self, problem: Problem, constraints: dict[str, _Constraint], pinned: Placement, occupied: np.ndarray
    ) -> tuple[Placement, Any]:
        pops = [p for p in problem.pops if problem.kinds[p] != "input"]
        fixed = {p for p in pops if constraints.get(p) and constraints[p].circuits is not None}
        # Row profile: rows[P][Q][sign] = max over neurons j of Q of the slots from P into j (per circuit).
        prof = self._profile(problem, pinned)
        assign = self._hemispheres(problem, constraints, pinned, prof, pops, fixed)

        best = None
        tried: set[tuple] = set()
        for _ in range(12):
            key = tuple(sorted((p, tuple(v)) for p, v in assign.items()))
            if key in tried:
                break
            tried.add(key)
            placement = self._columns(problem, pinned, occupied, assign)
            plan = plan_rows(problem, placement)
            score = plan.overflow(problem) + len(plan.violations)
            if best is None or score < best[0]:
                best = (score, placement, plan)
            if score == 0:
                break
            # Hill climb: move one whole population to the other hemisphere if that lowers the overflow.
            moves = []
            for p in pops:
                if p in fixed or (constraints.get(p) and constraints[p].hemisphere is not None):
                    continue
                n_h = assign[p]
                if min(n_h) != 0:
                    continue
                cur_h = 0 if n_h[0] else 1
                trial = dict(assign)
                trial[p] = [n_h[1], n_h[0]]
                if not self._fits(problem, pinned, trial, pops):
                    continue
                moves.append((p, cur_h, trial))
            improved = False
            for _p, _h, trial in moves:
                placement = self._columns(problem, pinned, occupied, trial)
                plan = plan_rows(problem, placement)
                s = plan.overflow(problem) + len(plan.violations)
                if s < best[0]:
                    best = (s, placement, plan)
                    assign = trial
                    improved = True
                    if s == 0:
                        break
            if not improved or best[0] == 0:
                break
        assert best is not None  # set by the first iteration
        return best[1], best[2]

    @staticmethod
    def _profile(problem: Problem, placement: Placement) -> dict[tuple[int, int, int], int]:
        """Per (source population, target population, sign): max over target neurons of slots per circuit."""
        if problem.n_slots == 0:
            return {}
        sp = problem.pop_of[problem.s_src]
        key = (sp * 2 + problem.s_sign) * problem.n_neurons + problem.s_tgt
        uniq, counts = np.unique(key, return_counts=True)
        tgt = uniq % problem.n_neurons
        rest = uniq // problem.n_neurons
        sign, spop = rest % 2, rest // 2
        per = -(-counts // placement.width[tgt])
        out: dict[tuple[int, int, int], int] = {}
        for a, b, s, v in zip(spop.tolist(), problem.pop_of[tgt].tolist(), sign.tolist(), per.tolist()):
            k = (a, b, s)
            if v > out.get(k, 0):
                out[k] = v
        return out

    @staticmethod
    def _circuits_free(problem: Problem, pinned: Placement, assign: dict[str, list[int]], pops: list[str]) -> list[int]:
        chip = problem.chip
        used = [0] * chip.hemispheres
        for p in pops:
            w = int(pinned.width[problem.first[p]])
            for h, n in enumerate(assign[p]):
                used[h] += n * w
        return [chip.columns - u for u in used]

    def _fits(self, problem: Problem, pinned: Placement, assign: dict[str, list[int]], pops: list[str]) -> bool:
        return all(f >= 0 for f in self._circuits_free(problem, pinned, assign, pops))

    def _hemispheres(
        self,
        problem: Problem,
        constraints: dict[str, _Constraint],
        pinned: Placement,
        prof: dict[tuple[int, int, int], int],
        pops: list[str],
        fixed: set[str],
    ) -> dict[str, list[int]]:
        """Neurons of each population per hemisphere (greedy balance of the row estimates)."""
        chip = problem.chip
        H = chip.hemispheres
        pidx = {p: i for i, p in enumerate(problem.pops)}
        assign: dict[str, list[int]] = {}
        for p in fixed:
            ids = problem.ids(p)
            assign[p] = [int((pinned.hemisphere[ids] == h).sum()) for h in range(H)]
        incoming: dict[int, list[tuple[int, int, int]]] = {}
        for (a, b, s), v in prof.items():
            incoming.setdefault(b, []).append((a, s, v))

        def estimate(members: list[set[int]]) -> list[int]:
            rows = []
            for h in range(H):
                best: dict[tuple[int, int], int] = {}
                for b in members[h]:
                    for a, s, v in incoming.get(b, []):
                        if v > best.get((a, s), 0):
                            best[(a, s)] = v
                rows.append(sum(best.values()))
            return rows

        members: list[set[int]] = [set() for _ in range(H)]
        for p, n in assign.items():
            for h in range(H):
                if n[h]:
                    members[h].add(pidx[p])
        todo = [p for p in pops if p not in fixed]
        todo.sort(key=lambda p: (-sum(v for _a, _s, v in incoming.get(pidx[p], [])), -problem.sizes[p]))
        for p in todo:
            size = problem.sizes[p]
            w = int(pinned.width[problem.first[p]])
            free = self._circuits_free(
                problem, pinned, {**assign, **{q: [0] * H for q in todo if q not in assign}}, pops
            )
            c = constraints.get(p)
            allowed = [c.hemisphere] if c is not None and c.hemisphere is not None else list(range(H))
            options = []
            for h in allowed:
                if free[h] >= size * w:
                    trial = [set(m) for m in members]
                    trial[h].add(pidx[p])
                    est = estimate(trial)
                    options.append((max(est), sum(est), -free[h], h))
            if options:
                h = min(options)[3]
                n = [0] * H
                n[h] = size
            else:
                # Too large for one hemisphere: fill the freest one first, the rest elsewhere.
                n = [0] * H
                left = size
                for h in sorted(allowed, key=lambda h: -free[h]):
                    take = min(left, max(0, free[h] // w))
                    n[h] = take
                    left -= take
                if left:
                    n[sorted(allowed, key=lambda h: -free[h])[0]] += left  # over capacity: _columns reports it
            assign[p] = n
            for h in range(H):
                if n[h]:
                    members[h].add(pidx[p])
        return assign

    def _columns(
        self, problem: Problem, pinned: Placement, occupied0: np.ndarray, assign: dict[str, list[int]]
    ) -> Placement:
        """Choose columns: sources by bus balance (exact per-column row model), the rest first-free."""
        chip = problem.chip
        E, H, cpe = chip.event_outputs, chip.hemispheres, chip.columns_per_event_output
        placement = pinned.copy()
        occupied = occupied0.copy()
        hem = placement.hemisphere.copy()
        for p, n in assign.items():
            ids = problem.ids(p)
            unpinned = ids[placement.hemisphere[ids] < 0]
            k = 0
            for h in range(H):
                take = n[h] - int((placement.hemisphere[ids] == h).sum())
                hem[unpinned[k : k + take]] = h
                k += take
        internal = ~problem.external[problem.s_src]
        src, tgt, sign = problem.s_src[internal], problem.s_tgt[internal], problem.s_sign[internal]
        N = problem.n_neurons
        # (source, sign, target) -> slots, grouped by source.
        key = (src * 2 + sign) * N + tgt
        uniq, cnt = np.unique(key, return_counts=True)
        u_tgt = uniq % N
        u_sign = (uniq // N) % 2
        u_src = uniq // (2 * N)
        starts = np.searchsorted(u_src, np.arange(N + 1))
        counts = np.zeros((E, 2, N), np.int64)
        rows = np.zeros((E, H, 2), np.int64)
        width = placement.width

        def commit(s: int, e: int) -> None:
            sl = slice(starts[s], starts[s + 1])
            for sg in (0, 1):
                m = u_sign[sl] == sg
                t = u_tgt[sl][m]
                counts[e, sg, t] += cnt[sl][m]
                per = -(-counts[e, sg, t] // width[t])
                for h in range(H):
                    mh = hem[t] == h
                    if mh.any():
                        rows[e, h, sg] = max(rows[e, h, sg], int(per[mh].max()))

        sources = np.unique(src)
        for s in sources:
            if placement.hemisphere[s] >= 0:
                commit(int(s), int(placement.column[s] // cpe))
        # Multi-circuit neurons that feed no other neuron send no events, so their columns do not matter to
        # routing: they go first, widest first, packed from the right end of their hemisphere. A source
        # placed by bus balance takes the first free column of a block, which leaves gaps that would not
        # hold a multi-circuit neuron placed after it (one-circuit ones fill the gaps, below).
        is_source = np.zeros(N, bool)
        is_source[sources] = True
        sinks = [
            int(n)
            for n in problem.placed_ids()
            if placement.hemisphere[n] < 0 and not is_source[n] and int(width[n]) > 1
        ]
        for nid in sorted(sinks, key=lambda n: -int(width[n])):
            h, w = int(hem[nid]), int(width[nid])
            col = self._last_free(occupied, h, w)
            if col < 0:
                h = next((x for x in range(H) if x != h and self._last_free(occupied, x, w) >= 0), h)
                col = self._last_free(occupied, h, w)
            if col < 0:
                raise self._no_room(problem, nid, w)
            placement.hemisphere[nid], placement.column[nid] = h, col
            occupied[h, col : col + w] = True
        out_deg = np.bincount(src, minlength=N)
        pop_deg = {p: int(out_deg[problem.ids(p)].sum()) for p in assign}
        order = [int(s) for s in sources if placement.hemisphere[s] < 0]
        order.sort(key=lambda s: (-pop_deg[problem.pops[problem.pop_of[s]]], problem.pop_of[s], s))
        bus_of = np.arange(E) % chip.buses_per_hemisphere
        for s in order:
            h_s, w = int(hem[s]), int(width[s])
            cands = []
            for e in range(E):
                col = self._first_free(occupied, h_s, w, e * cpe, (e + 1) * cpe)
                if col >= 0:
                    cands.append((e, col))
            if not cands:
                col = self._first_free(occupied, h_s, w)
                if col < 0:
                    raise self._no_room(problem, s, w)
                cands = [(col // cpe, col)]
            sl = slice(starts[s], starts[s + 1])
            new_rows = rows.copy()
            for sg in (0, 1):
                m = u_sign[sl] == sg
                t = u_tgt[sl][m]
                if not len(t):
                    continue
                per = -(-(counts[:, sg, t] + cnt[sl][m]) // width[t])  # [E, targets]
                for h in range(H):
                    mh = hem[t] == h
                    if mh.any():
                        new_rows[:, h, sg] = np.maximum(rows[:, h, sg], per[:, mh].max(axis=1))
            load = np.zeros((H, chip.buses_per_hemisphere), np.int64)
            for e in range(E):
                load[:, bus_of[e]] += rows[e].sum(axis=1)
            best = None
            for e, col in cands:
                delta = new_rows[e].sum(axis=1) - rows[e].sum(axis=1)  # per hemisphere
                after = load[:, bus_of[e]] + delta
                score = (int(after.max()), int(delta.sum()), e)
                if best is None or score < best[0]:
                    best = (score, e, col)
            assert best is not None  # cands is never empty
            _, e, col = best
            placement.hemisphere[s], placement.column[s] = h_s, col
            occupied[h_s, col : col + w] = True
            commit(s, e)
        for nid in problem.placed_ids():
            if placement.hemisphere[nid] >= 0:
                continue
            h, w = int(hem[nid]), int(width[nid])
            col = self._first_free(occupied, h, w)
            if col < 0:
                other = [x for x in range(H) if x != h]
                for h2 in other:
                    col = self._first_free(occupied, h2, w)
                    if col >= 0:
                        h = h2
                        break
            if col < 0:
                raise self._no_room(problem, int(nid), w)
            placement.hemisphere[nid], placement.column[nid] = h, col
            occupied[h, col : col + w] = True
        return placement
