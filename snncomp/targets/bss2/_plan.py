"""Row planning: which synapse rows every slot needs, for a given placement.

The chip's routing model (spec §1.3, §3.5), as used by ``place`` (to score placements) and ``route``
(to allocate them):

- Sources reaching one PADI bus form *groups*. A group shares one set of synapse drivers; its sources
  are told apart at the synapses by their 6-bit label, so a group has at most 64 sources.
  On-chip sources of event output ``e`` that feed hemisphere ``h`` form one group on bus ``e % 4`` of
  ``h`` (64 circuits share an event output, so 64 labels always suffice). External (FPGA) sources may
  use any bus; they are packed greedily into groups on the buses with the most free drivers.
- A row carries one sign. Every column picks its own source in each row, so a group needs
  ``max over columns`` of its slots into that column, per sign: ``rows = max_c exc(c) + max_c inh(c)``,
  and ``ceil(rows / 2)`` drivers.
- Slots into a logical neuron of several circuits are spread round-robin over its circuits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._drivers import allocate_drivers, internal_row_select
from ._problem import Placement, Problem, describe_neurons
from .errors import Violation

__all__ = ["Group", "RowPlan", "plan_rows"]


@dataclass
class Group:
    """Sources sharing one driver allocation on PADI bus ``bus`` of ``hemisphere``."""

    hemisphere: int
    bus: int
    block: int  # event output of on-chip sources; -1 for external sources
    sources: np.ndarray
    rows: tuple[int, int]  # (excitatory, inhibitory)

    @property
    def external(self) -> bool:
        """True for a group of FPGA sources."""
        return self.block < 0

    def n_rows(self) -> int:
        """Synapse rows this group needs."""
        return self.rows[0] + self.rows[1]

    def n_drivers(self, rows_per_driver: int) -> int:
        """Synapse drivers this group needs (two rows each, each row with its own sign)."""
        return -(-self.n_rows() // rows_per_driver)


@dataclass
class RowPlan:
    """Groups, the group and circuit column of every slot, and the demand per bus."""

    groups: list[Group]
    slot_group: np.ndarray
    slot_column: np.ndarray
    bus_rows: np.ndarray  # [hemisphere, bus]
    bus_drivers: np.ndarray
    violations: list[Violation] = field(default_factory=list)
    # (hemisphere, bus) -> (group indices, (row selects, [(bus index, row mask)] per group)); with check=True.
    allocation: dict[tuple[int, int], tuple[list[int], tuple[list[int], list[list[tuple[int, int]]]]]] = field(
        default_factory=dict
    )

    def overflow(self, problem: Problem) -> int:
        """Total demand above the limits (0 when the plan fits); a placer's score."""
        chip = problem.chip
        return int(
            np.maximum(self.bus_drivers - chip.drivers_per_bus, 0).sum()
            + np.maximum(self.bus_rows - chip.rows_per_bus, 0).sum()
            + sum(max(0, len(g.sources) - chip.labels) for g in self.groups)
        )


def _cumcount(keys: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Position of each element among the elements with the same key, in ``order`` (default: stable)."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    if order is None:
        order = np.argsort(keys, kind="stable")
    sk = keys[order]
    start = np.r_[True, sk[1:] != sk[:-1]]
    run_start = np.maximum.accumulate(np.where(start, np.arange(len(sk)), 0))
    out = np.empty(len(keys), np.int64)
    out[order] = np.arange(len(sk)) - run_start
    return out


def _turns(tgt: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Position of each slot among its target's slots, in the order (key, slot)."""
    return _cumcount(tgt, np.lexsort((np.arange(len(tgt)), key, tgt)))


def plan_rows(problem: Problem, placement: Placement, *, check: bool = True) -> RowPlan:
    """The exact row demand of ``placement`` (and, with ``check``, every violated limit)."""
    chip = problem.chip
    C, B, H = chip.columns, chip.buses_per_hemisphere, chip.hemispheres
    rpd = chip.rows_per_driver
    src, tgt, sign = problem.s_src, problem.s_tgt, problem.s_sign
    n = len(src)
    ext = problem.external[src]
    h = placement.hemisphere[tgt]
    block = np.where(ext, -1, placement.column[src] // chip.columns_per_event_output)
    # Spread each target's slots over its circuits round-robin, ordered by (group-ish key, sign): within a
    # key the circuits take turns (so its rows are ceil(count / width)), and each key starts where the
    # last one stopped, so that the circuits' totals differ by at most one (a fan-in of w * 256 fits).
    key = (h * (chip.event_outputs + 1) + block + 1) * 2 + sign
    col = placement.column[tgt] + _turns(tgt, key) % placement.width[tgt]

    groups: list[Group] = []
    slot_group = np.full(n, -1, np.int64)
    bus_rows = np.zeros((H, B), np.int64)
    bus_drivers = np.zeros((H, B), np.int64)

    # On-chip sources: one group per (target hemisphere, source event output).
    internal = np.nonzero(~ext)[0]
    if len(internal):
        gkey = h[internal] * chip.event_outputs + block[internal]
        uniq, inv = np.unique(gkey, return_inverse=True)
        counts = np.bincount((inv * 2 + sign[internal]) * C + col[internal], minlength=len(uniq) * 2 * C)
        rows = counts.reshape(len(uniq), 2, C).max(axis=2)
        for gi, gk in enumerate(uniq):
            hh, e = divmod(int(gk), chip.event_outputs)
            members = internal[inv == gi]
            g = Group(hh, chip.bus_of_event_output(e), e, np.unique(src[members]), (int(rows[gi, 0]), int(rows[gi, 1])))
            slot_group[members] = len(groups)
            groups.append(g)
            bus_rows[hh, g.bus] += g.n_rows()
            bus_drivers[hh, g.bus] += g.n_drivers(rpd)

    # External sources: greedy packing into groups on the buses with the most free drivers.
    external = np.nonzero(ext)[0]
    for hh in range(H):
        mine = external[h[external] == hh]
        if not len(mine):
            continue
        for bus, members, slots, rows in _pack_external(
            mine, src, sign * C + col, chip.drivers_per_bus - bus_drivers[hh], C, B, rpd, chip.labels
        ):
            g = Group(hh, bus, -1, members, rows)
            slot_group[slots] = len(groups)
            groups.append(g)
            bus_rows[hh, bus] += g.n_rows()
            bus_drivers[hh, bus] += g.n_drivers(rpd)

    plan = RowPlan(groups, slot_group, col, bus_rows, bus_drivers)
    if check:
        plan.violations = _violations(problem, placement, plan, h)
        if not plan.violations:
            plan.violations = _allocate(problem, plan)
    return plan


def _allocate(problem: Problem, plan: RowPlan) -> list[Violation]:
    """Row selects and driver masks for every bus (stored in ``plan.allocation``); failures as violations."""
    chip = problem.chip
    out = []
    for hh in range(chip.hemispheres):
        for b in range(chip.buses_per_hemisphere):
            idx = [k for k, g in enumerate(plan.groups) if g.hemisphere == hh and g.bus == b]
            if not idx:
                continue
            req = [
                (
                    None if plan.groups[k].external else internal_row_select(chip, plan.groups[k].block),
                    plan.groups[k].n_drivers(chip.rows_per_driver),
                )
                for k in idx
            ]
            got = allocate_drivers(chip, req)
            if got is None:
                out.append(
                    Violation(
                        f"row-select addresses on PADI bus {b} of hemisphere {hh}",
                        detail=f"no row-select/row-mask assignment gives the groups {[n for _, n in req]} drivers",
                        responsible=tuple(describe_neurons(problem, plan.groups[k].sources) for k in idx),
                        check=13,
                        hint="two event outputs share this bus, so each of their groups can use at most 28 drivers; "
                        "spread the sources over other buses",
                    )
                )
            else:
                plan.allocation[(hh, b)] = (idx, got)
    return out


def _pack_external(
    mine: np.ndarray, src: np.ndarray, cells: np.ndarray, free: np.ndarray, C: int, B: int, rpd: int, labels: int
) -> list[tuple[int, np.ndarray, np.ndarray, tuple[int, int]]]:
    """Greedy groups of external sources for one hemisphere: (bus, sources, slots, (exc rows, inh rows)).

    Sources join the open group while its drivers still fit on its bus (and it has < 64 sources);
    a new group opens on the bus with the most free drivers.
    """
    free = free.copy()
    mine = mine[np.lexsort((mine, src[mine]))]
    cell = cells[mine]
    srcs, starts = np.unique(src[mine], return_index=True)
    bounds = np.r_[starts, len(mine)]
    out: list[tuple[int, np.ndarray, np.ndarray, tuple[int, int]]] = []

    def drivers(cnt: np.ndarray) -> int:
        return -(-(int(cnt[:C].max()) + int(cnt[C:].max())) // rpd)

    bus = -1
    cnt: np.ndarray = np.zeros(0)
    members: list[int] = []
    slots: list[np.ndarray] = []
    for k in range(len(srcs) + 1):
        if k < len(srcs):
            contrib = np.bincount(cell[bounds[k] : bounds[k + 1]], minlength=2 * C)
            if members and len(members) < labels and drivers(cnt + contrib) <= free[bus]:
                cnt = cnt + contrib
                members.append(int(srcs[k]))
                slots.append(mine[bounds[k] : bounds[k + 1]])
                continue
        if members:
            out.append(
                (bus, np.array(members, np.int64), np.concatenate(slots), (int(cnt[:C].max()), int(cnt[C:].max())))
            )
            free[bus] -= drivers(cnt)
        if k == len(srcs):
            break
        alone = drivers(contrib)
        pool = [b for b in range(B) if free[b] >= alone] or list(range(B))
        bus = max(pool, key=lambda b: (free[b], -b))
        cnt, members, slots = contrib, [int(srcs[k])], [mine[bounds[k] : bounds[k + 1]]]
    return out


def _violations(problem: Problem, placement: Placement, plan: RowPlan, h: np.ndarray) -> list[Violation]:
    chip = problem.chip
    C, B = chip.columns, chip.buses_per_hemisphere
    out: list[Violation] = []
    tgt = problem.s_tgt
    circuit = h * C + plan.slot_column

    # Check 5: synapses per circuit (one per row of its hemisphere).
    per_circuit = np.bincount(circuit, minlength=chip.hemispheres * C) if len(circuit) else np.zeros(0, int)
    for cid in np.nonzero(per_circuit > chip.rows_per_hemisphere)[0][:8]:
        hh, c = divmod(int(cid), C)
        nid = int(tgt[circuit == cid][0])
        out.append(
            Violation(
                f"synapses into circuit h{hh}:c{c} (neuron {problem.name(nid)})",
                int(per_circuit[cid]),
                chip.rows_per_hemisphere,
                (describe_neurons(problem, problem.s_src[circuit == cid]),),
                check=5,
                hint="give the population more circuits per neuron (metadata bss2.placement "
                "{'pop': {'circuits_per_neuron': k}}) or reduce its fan-in",
            )
        )
    # Check 6: synapses into one circuit through one PADI bus.
    gbus = np.array([g.bus for g in plan.groups], np.int64)
    if len(circuit):
        slot_bus = gbus[plan.slot_group]
        per_cb = np.bincount(circuit * B + slot_bus, minlength=chip.hemispheres * C * B)
        for idx in np.nonzero(per_cb > chip.rows_per_bus)[0][:8]:
            cid, b = divmod(int(idx), B)
            hh, c = divmod(cid, C)
            sel = (circuit == cid) & (slot_bus == b)
            nid = int(tgt[sel][0])
            out.append(
                Violation(
                    f"synapses into circuit h{hh}:c{c} (neuron {problem.name(nid)}) "
                    f"via PADI bus {b} of hemisphere {hh}",
                    int(per_cb[idx]),
                    chip.rows_per_bus,
                    (describe_neurons(problem, problem.s_src[sel]),),
                    check=6,
                    hint="spread the sources over more event outputs (columns) or give the target more circuits",
                )
            )
    # Check 3: rows of a hemisphere's synapse array.
    for hh in range(chip.hemispheres):
        demand = int(plan.bus_rows[hh].sum())
        if demand > chip.rows_per_hemisphere:
            targets = np.nonzero(placement.hemisphere == hh)[0]
            srcs = np.concatenate([g.sources for g in plan.groups if g.hemisphere == hh])
            out.append(
                Violation(
                    f"synapse rows in hemisphere {hh}",
                    demand,
                    chip.rows_per_hemisphere,
                    (f"targets {describe_neurons(problem, targets)}", f"sources {describe_neurons(problem, srcs)}"),
                    check=3,
                    hint="move target populations to the other hemisphere (metadata bss2.placement) "
                    "or reduce fan-in (sparser masks, split-sign{signs=used})",
                )
            )
    # Checks 8 and 9: rows and drivers per PADI bus, labels per group.
    for hh in range(chip.hemispheres):
        for b in range(B):
            rows, drivers = int(plan.bus_rows[hh, b]), int(plan.bus_drivers[hh, b])
            if rows <= chip.rows_per_bus and drivers <= chip.drivers_per_bus:
                continue
            mine = [g for g in plan.groups if g.hemisphere == hh and g.bus == b]
            who = [
                f"event output {g.block} {describe_neurons(problem, g.sources)} ({g.n_rows()} rows)"
                for g in mine
                if not g.external
            ]
            ext = [g for g in mine if g.external]
            if ext:
                srcs = np.concatenate([g.sources for g in ext])
                n_rows = sum(g.n_rows() for g in ext)
                groups = f" in {len(ext)} groups" if len(ext) > 1 else ""
                who.append(f"external {describe_neurons(problem, srcs)} ({n_rows} rows{groups})")
            if rows > chip.rows_per_bus:
                out.append(
                    Violation(
                        f"synapse rows on PADI bus {b} of hemisphere {hh}",
                        rows,
                        chip.rows_per_bus,
                        tuple(who),
                        check=8,
                        hint="spread these sources over more event outputs (place{strategy=routing-aware}) or move "
                        "some of their targets to the other hemisphere",
                    )
                )
            else:
                out.append(
                    Violation(
                        f"synapse drivers on PADI bus {b} of hemisphere {hh}",
                        drivers,
                        chip.drivers_per_bus,
                        tuple(who),
                        check=9,
                        hint="groups with an odd number of rows waste half a driver each; spread the sources",
                    )
                )
    for g in plan.groups:
        if len(g.sources) > chip.labels:
            out.append(
                Violation(
                    f"synapse labels in source group on PADI bus {g.bus} of hemisphere {g.hemisphere}",
                    len(g.sources),
                    chip.labels,
                    (describe_neurons(problem, g.sources),),
                    check=9,
                )
            )
    return out
