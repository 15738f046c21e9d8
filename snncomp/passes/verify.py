"""``verify``: check that the graph holds a valid network and consistent annotations."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..errors import SnnCompError
from ._annotations import Schedule
from ._graph import from_graph
from ._pass import Pass, PassContext, register


def check_annotations(g: nx.MultiDiGraph) -> list[str]:
    """Problems with pass annotations (e.g. a schedule that misses a population)."""
    problems: list[str] = []
    sched = g.graph["ann"].get("schedule")
    if isinstance(sched, Schedule):
        pops = [n for n, d in g.nodes(data=True) if d["ir"].kind != "input"]
        seen: dict[str, int] = {}
        for stage in sched.stages:
            for p in stage.populations:
                if p in seen:
                    problems.append(f"schedule: population '{p}' is in stages {seen[p]} and {stage.index}")
                seen[p] = stage.index
        missing = sorted(set(pops) - set(seen))
        extra = sorted(set(seen) - set(pops))
        if missing:
            problems.append(f"schedule: populations {missing} are in no stage")
        if extra:
            problems.append(f"schedule: stages name unknown populations {extra}")
        # Each stage may read only from itself or from earlier stages.
        for u, v in nx.DiGraph(g).edges():
            if u in seen and v in seen and seen[u] > seen[v]:
                problems.append(f"schedule: '{v}' (stage {seen[v]}) reads '{u}' from a later stage {seen[u]}")
    # Target annotations are checked by their target (this layer does not know their meaning); a
    # target whose passes ran is loaded, and each ignores graphs without its annotations.
    from ..targets import loaded

    for target in loaded():
        if target.check_annotations is not None:
            problems += target.check_annotations(g)
    return problems


@register
@dataclass(frozen=True)
class Verify(Pass):
    """Re-validate the network (every IR invariant) and the annotations; changes nothing."""

    name = "verify"

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        from_graph(graph)
        problems = check_annotations(graph)
        if problems:
            raise SnnCompError("; ".join(problems))
        return graph.copy()
