"""Synapse-driver allocation on one PADI bus: row-select addresses and row-address compare masks.

A driver with bus index ``j`` and mask ``m`` accepts an event iff ``(j & m) == (row_select & m)``
(spec §1.3). For a group with row select ``r`` the widest useful mask is ``m = ~(j ^ r)``: the driver
then accepts exactly the row selects that agree with ``r`` wherever ``j`` does. Another row select ``x``
used on the same bus slips through iff ``j`` agrees with ``x`` on every bit where ``x`` and ``r`` differ;
otherwise driver ``j`` is *eligible* for the group.
"""

from __future__ import annotations

from functools import lru_cache

from .chip import ChipSpec

__all__ = ["allocate_drivers", "internal_row_select"]


def internal_row_select(chip: ChipSpec, event_output: int) -> int:
    """Row select of the on-chip sources of ``event_output``: its number above two address-out bits.

    The address-out bits are ``0b00`` for the first half of the event outputs and ``0b11`` for the second,
    so the two event outputs sharing a PADI bus (``e`` and ``e + 4``) differ in 3 of the 5 bits and each
    keeps 28 of the 32 drivers eligible.
    """
    hi_bits = chip.address_out_bits - chip.label_bits
    hi = (1 << hi_bits) - 1 if event_output >= chip.buses_per_hemisphere else 0
    return (event_output << hi_bits) | hi


@lru_cache(maxsize=4)
def _conflicts(bits: int, n_drivers: int) -> tuple[tuple[int, ...], ...]:
    """``table[r][x]``: bitmask of the drivers ``j`` that cannot serve row select ``r`` when ``x`` is also used."""
    full = (1 << bits) - 1
    table = []
    for r in range(full + 1):
        row = []
        for x in range(full + 1):
            d = x ^ r
            mask = 0
            for j in range(n_drivers):
                if x != r and (j & d) == (x & d):
                    mask |= 1 << j
            row.append(mask)
        table.append(tuple(row))
    return tuple(table)


def _eligible_mask(table: tuple[tuple[int, ...], ...], r: int, others: list[int], all_drivers: int) -> int:
    bad = 0
    for x in others:
        bad |= table[r][x]
    return all_drivers & ~bad


def allocate_drivers(
    chip: ChipSpec, groups: list[tuple[int | None, int]]
) -> tuple[list[int], list[list[tuple[int, int]]]] | None:
    """Row selects and drivers for the groups of one PADI bus.

    ``groups[k] = (row_select or None, drivers needed)``; ``None`` lets the allocator choose (external
    sources). Returns the row select of each group and its ``(bus index, row mask)`` drivers, or None
    when no assignment exists. Free row selects are chosen, largest group first, to maximise the smallest
    slack (eligible drivers minus drivers needed) over all groups; drivers are then matched to groups
    (bipartite matching with augmenting paths, groups with the fewest eligible drivers first).
    """
    J = chip.drivers_per_bus
    full = (1 << chip.row_select_bits) - 1
    table = _conflicts(chip.row_select_bits, J)
    all_drivers = (1 << J) - 1
    rs: list[int | None] = [r for r, _ in groups]
    need = [n for _, n in groups]
    if sum(need) > J or len(set(r for r in rs if r is not None)) < sum(r is not None for r in rs):
        return None
    for i in sorted(range(len(groups)), key=lambda k: (-need[k], k)):
        if rs[i] is not None:
            continue
        placed = [(r, need[k]) for k, r in enumerate(rs) if r is not None]
        used = [r for r, _ in placed]
        best = None
        for cand in range(full + 1):
            if cand in used:
                continue
            now = [*used, cand]
            slack = min(
                bin(_eligible_mask(table, r, now, all_drivers)).count("1") - n for r, n in [*placed, (cand, need[i])]
            )
            # Ties: far from the row selects in use (more drivers stay eligible for later groups).
            spread = sum(bin(cand ^ r).count("1") for r in used)
            score = (slack, spread, -cand)
            if best is None or score > best[0]:
                best = (score, cand)
        if best is None:
            return None
        rs[i] = best[1]
    final = [int(r) for r in rs]  # type: ignore[arg-type]
    elig_masks = [_eligible_mask(table, r, final, all_drivers) for r in final]
    elig = [[j for j in range(J) if m >> j & 1] for m in elig_masks]
    owner = [-1] * J

    def augment(g: int, seen: set[int]) -> bool:
        for j in elig[g]:
            if j in seen:
                continue
            seen.add(j)
            if owner[j] < 0 or augment(owner[j], seen):
                owner[j] = g
                return True
        return False

    for g in sorted(range(len(groups)), key=lambda k: (len(elig[k]) - need[k], k)):
        for _ in range(need[g]):
            if not augment(g, set()):
                return None
    drivers: list[list[tuple[int, int]]] = [[] for _ in groups]
    for j, g in enumerate(owner):
        if g >= 0:
            drivers[g].append((j, ~(j ^ final[g]) & full))
    return final, drivers
