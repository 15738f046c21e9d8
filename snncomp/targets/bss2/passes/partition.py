"""``partition``: cut a network that does not fit one chip into chip-sized partitions (before ``place``).

The planning is :func:`snncomp.targets.bss2.partition.plan_partitions`; this pass reads the fan-in of
every neuron in synapse slots from the quantized graph and applies it. A network that fits leaves the
pass without a trace. One that does not fit is refused as ``place`` would refuse it, with a hint naming
how many partitions it needs, unless ``max_partitions`` allows them: then every partition's
sub-network is lowered by the single-chip pipeline and the graph gets the ``partitioned`` annotation
(a :class:`~snncomp.targets.bss2.config.PartitionedConfig`); ``place``, ``route`` and ``verify-config``
leave such a graph to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx

from ....errors import PassError, SnnCompError
from ....passes import Pass, PassContext, PassManager, annotate_graph, from_graph, register
from .._problem import Problem, chip_of
from ..errors import ResourceError, _ViolationsError
from ..partition import PartitionPlan, plan_partitions
from .place import Place

__all__ = ["PART_PIPELINE_OPTION", "Partition", "is_partitioned", "lower_parts", "plan_and_lower", "skew_text"]

# Re-planning after a partition failed to place or route: rows left free per circuit when a circuit's
# fan-in overflowed (checks 5, 6) and a wider neuron helps; otherwise the partition that holds the
# failing partition's widest population is capped at these fractions of the chip, in turn.
ROW_SLACKS = (8, 16, 32, 64)
FILLS = (15 / 16, 7 / 8, 3 / 4, 5 / 8, 1 / 2, 3 / 8, 1 / 4)
FAN_IN_CHECKS = (5, 6)

PART_PIPELINE_OPTION = "bss2.part_pipeline"
"""Compile option: the pipeline text that lowers each partition (default ``snncomp.pipeline("bss2")``)."""


def is_partitioned(graph: nx.MultiDiGraph) -> bool:
    """Whether ``partition`` lowered this graph in several partitions (the single-chip passes then skip it)."""
    return graph.graph["ann"].get("partitioned") is not None


def plan_of(graph: nx.MultiDiGraph, options: dict[str, Any], **plan_options: Any) -> PartitionPlan:
    """The partition plan of a quantized graph (``plan_options`` as :func:`plan_partitions` takes them)."""
    chip = chip_of(graph, options)
    problem = Problem.from_graph(graph, chip)
    slots = problem.fan_in()
    fan_in = {p: slots[problem.ids(p)] for p in problem.pops}
    return plan_partitions(from_graph(graph), fan_in, chip, **plan_options)


def plan_and_lower(
    graph: nx.MultiDiGraph,
    options: dict[str, Any],
    plan_options: dict[str, Any],
    pipeline: str | None = None,
    remark: Callable[[str], None] | None = None,
) -> tuple[PartitionPlan, list[Any]]:
    """The partition plan of a quantized graph and each partition lowered (``CompileResult`` per partition).

    The plan counts circuits and rows; whether a partition then places and routes is up to ``place``
    and ``route``. When one does not, the plan is made again with slack, as the failure asks for:
    a circuit's fan-in over its rows (checks 5, 6 of BSS2_SPEC §5.2) leaves ``ROW_SLACKS`` rows per
    circuit free when sizing multi-circuit neurons (while that makes a neuron wider); otherwise (adjacent
    circuits, rows or drivers of a PADI bus, or no wider neuron possible) the partition holding the
    failing partition's widest population is capped at the next of ``FILLS`` of the chip below what it
    held. It stops at the first plan that lowers; when no slack is left, or the slack needs more than
    ``max_partitions``, it raises the last failure (with the partition count).
    A plan of one partition is returned without lowering (the single-chip passes follow).
    """
    slack = 0
    caps: dict[str, int] = {}
    plan = plan_of(graph, options, **plan_options)
    widths = dict(plan.widths)  # the first plan's: a re-plan says "spare rows" only where they widened a neuron
    while True:
        if plan.n_parts == 1:
            return plan, []
        try:
            return plan, lower_parts(plan, options, pipeline)
        except _ViolationsError as exc:
            failure = exc
        index = int(getattr(failure, "partition", 0))
        fan_in = any(v.check in FAN_IN_CHECKS for v in failure.violations)
        before = _shape(plan)
        while _shape(plan) == before:  # a slack that changes nothing (widths at their maximum) is skipped
            if fan_in and slack < len(ROW_SLACKS):
                slack += 1
            else:
                fan_in = False
                pop = _widest(plan, index)
                smaller = [int(plan.limit * f) for f in FILLS if int(plan.limit * f) < plan.circuits[index]]
                if pop is None or not smaller or caps.get(pop, plan.limit) <= smaller[-1]:
                    raise failure
                caps[pop] = next(c for c in smaller if c < caps.get(pop, plan.limit))
            retry = {**plan_options, "row_slack": ROW_SLACKS[slack - 1] if slack else 0, "caps": dict(caps)}
            try:
                plan = plan_of(graph, options, **retry)
            except ResourceError as more:
                raise type(failure)(
                    f"{failure.summary}; with room to place and route it, {more.summary}",
                    [*failure.violations, *more.violations],
                ) from failure
        if remark is not None:
            wider = ", ".join(f"{p} {widths[p]} -> {w}" for p, w in plan.widths.items() if w != widths.get(p, w))
            changes = [f"{retry['row_slack']} rows per circuit spare (circuits per neuron: {wider})"] if wider else []
            changes += [f"{p}'s partition at most {c} circuits" for p, c in caps.items()]
            remark(
                f"re-planned: {failure.summary.split(':', 1)[0]} did not lower "
                f"({failure.violations[0].resource}); now {', '.join(changes)}: {plan.n_parts} partition(s)"
            )


def _widest(plan: PartitionPlan, index: int) -> str | None:
    """The population of partition ``index`` with the most circuits per neuron (the last among equals)."""
    widths = {s.population: plan.widths[s.population] for s in plan.slices if s.part == index}
    return max(reversed(list(widths)), key=widths.__getitem__) if widths else None


def _shape(plan: PartitionPlan) -> tuple[Any, ...]:
    return plan.slices, plan.circuits


def lower_parts(plan: PartitionPlan, options: dict[str, Any], pipeline: str | None = None) -> list[Any]:
    """Each partition's sub-network through the single-chip pipeline (``CompileResult`` per partition).

    A partition that does not lower is an error naming the partition, its populations and the reason.
    """
    from ....passes import pipeline as default_pipeline

    text = pipeline or str(default_pipeline("bss2"))
    out = []
    for i, part in enumerate(plan.parts):
        try:
            out.append(PassManager(text).run(part, options))
        except PassError as exc:
            who = ", ".join(n.name for n in part.nodes if n.kind != "input")
            head = f"partition {i} of {plan.n_parts} ({who})"
            cause = exc.__cause__
            if isinstance(cause, _ViolationsError):
                err = type(cause)(f"{head}: {cause.summary}", cause.violations)
                err.partition = i  # type: ignore[attr-defined]  # (plan_and_lower re-plans around it)
                raise err from exc
            raise SnnCompError(f"{head} does not lower: {exc}") from exc
    return out


@register
@dataclass(frozen=True)
class Partition(Pass):
    """Cut a network too large for one chip into chip-sized partitions run one after another (or on ``chips``).

    Whole layers where they fit, a feed-forward population too large for one chip split by neurons (each
    part with its whole fan-in), every recurrent subnetwork (strongly connected component) kept whole;
    the partitions follow a topological order, so cut spikes only flow forward (Arnold et al. 2024).
    ``max_partitions`` (1: one chip, a network that does not fit is refused with the count it would
    need), ``objective`` (``fewest-partitions`` fills every chip; ``fewest-cut-synapses`` splits only
    populations larger than a chip), ``chips`` (1: sequential mode, one emulated chip runs the
    partitions one after another; ``k``: each partition on its own chip), ``inter_chip_latency`` (model
    seconds a cut spike takes from chip to chip in multi-chip mode; sequential mode replays recorded
    spikes at their timestamps). A network that fits is left unchanged.
    """

    name = "partition"
    requires = ("quantized",)
    ensures = ("partition",)

    max_partitions: int = 1
    objective: Literal["fewest-partitions", "fewest-cut-synapses"] = "fewest-partitions"
    chips: int = 1
    inter_chip_latency: float = 1e-3
    # place's option of the same name: pipeline("bss2", max_circuits_per_neuron=k) sets both, so that the
    # plan sizes multi-circuit neurons as place will
    max_circuits_per_neuron: int = Place.max_circuits_per_neuron

    def __post_init__(self) -> None:
        for name, value, ok in (
            ("max_partitions", self.max_partitions, isinstance(self.max_partitions, int) and self.max_partitions >= 1),
            ("chips", self.chips, isinstance(self.chips, int) and self.chips >= 1),
            ("inter_chip_latency", self.inter_chip_latency, _finite(self.inter_chip_latency)),
            (
                "max_circuits_per_neuron",
                self.max_circuits_per_neuron,
                isinstance(self.max_circuits_per_neuron, int) and self.max_circuits_per_neuron >= 1,
            ),
        ):
            if not ok:
                raise ResourceError("invalid partition option", [_bad(name, value)])

    def plan_options(self) -> dict[str, Any]:
        """This pass's options as :func:`~snncomp.targets.bss2.partition.plan_partitions` takes them."""
        return {
            "max_partitions": self.max_partitions,
            "objective": self.objective,
            "chips": self.chips,
            "max_circuits_per_neuron": self.max_circuits_per_neuron,
        }

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        # each partition by the running pipeline (its own 'partition' pass leaves it whole)
        text = ctx.options.get(PART_PIPELINE_OPTION) or ctx.pipeline or None
        plan, results = plan_and_lower(g, ctx.options, self.plan_options(), text, ctx.remark)
        if plan.n_parts == 1:
            return g
        config = plan.config(
            [r.annotations["hardware_config"] for r in results], self.chips, float(self.inter_chip_latency)
        )
        annotate_graph(g, partitioned=config)
        ctx.remark(plan.text())
        if self.chips > 1 and self.inter_chip_latency > 0 and plan.skewed():
            ctx.remark(skew_text(plan, float(self.inter_chip_latency)))
        for i, r in enumerate(results):
            for remark in r.remarks:
                ctx.remark(f"partition {i}: {remark}")
        return g


def skew_text(plan: PartitionPlan, latency: float) -> str:
    """What the inter-chip latency does to the neurons whose inputs crossed different numbers of chips."""
    items = ", ".join(f"{t} ({a} to {b} chip crossings)" for t, (a, b) in plan.skewed().items())
    return (
        f"multi-chip: {items} read spikes shifted against each other by the inter-chip latency "
        f"({latency:g} s per crossing): the chips compute another network than one chip (or sequential mode) "
        "would; train with it in the loop on the chips, or choose inter_chip_latency=0 to ignore it"
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _bad(name: str, value: Any) -> Any:
    from ..errors import Violation

    need = "a finite number >= 0 (model seconds)" if name == "inter_chip_latency" else "an integer >= 1"
    return Violation(f"partition option {name}", detail=f"must be {need}, got {value!r}")
