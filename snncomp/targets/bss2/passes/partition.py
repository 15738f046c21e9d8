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
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx

from ....errors import PassError, SnnCompError
from ....passes import Pass, PassContext, PassManager, annotate_graph, from_graph, register
from .._problem import Problem, chip_of
from ..errors import ResourceError, _ViolationsError
from ..partition import PartitionPlan, plan_partitions
from .place import Place

__all__ = ["PART_PIPELINE_OPTION", "Partition", "is_partitioned", "lower_parts"]

PART_PIPELINE_OPTION = "bss2.part_pipeline"
"""Compile option: the pipeline text that lowers each partition (default ``snncomp.pipeline("bss2")``)."""


def is_partitioned(graph: nx.MultiDiGraph) -> bool:
    """Whether ``partition`` lowered this graph in several partitions (the single-chip passes then skip it)."""
    return graph.graph["ann"].get("partitioned") is not None


def _max_circuits_per_neuron() -> int:
    # place's default, so that both passes size multi-circuit neurons alike
    return int(Place.max_circuits_per_neuron)


def plan_of(graph: nx.MultiDiGraph, options: dict[str, Any], **plan_options: Any) -> PartitionPlan:
    """The partition plan of a quantized graph (``plan_options`` as :func:`plan_partitions` takes them)."""
    chip = chip_of(graph, options)
    problem = Problem.from_graph(graph, chip)
    slots = problem.fan_in()
    fan_in = {p: slots[problem.ids(p)] for p in problem.pops}
    return plan_partitions(
        from_graph(graph), fan_in, chip, max_circuits_per_neuron=_max_circuits_per_neuron(), **plan_options
    )


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
                raise type(cause)(f"{head}: {cause.summary}", cause.violations) from exc
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

    def __post_init__(self) -> None:
        for name, value, ok in (
            ("max_partitions", self.max_partitions, isinstance(self.max_partitions, int) and self.max_partitions >= 1),
            ("chips", self.chips, isinstance(self.chips, int) and self.chips >= 1),
            ("inter_chip_latency", self.inter_chip_latency, _finite(self.inter_chip_latency)),
        ):
            if not ok:
                raise ResourceError("invalid partition option", [_bad(name, value)])

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        plan = plan_of(g, ctx.options, max_partitions=self.max_partitions, objective=self.objective, chips=self.chips)
        if plan.n_parts == 1:
            return g
        results = lower_parts(plan, ctx.options, ctx.options.get(PART_PIPELINE_OPTION))
        config = plan.config(
            [r.annotations["hardware_config"] for r in results], self.chips, float(self.inter_chip_latency)
        )
        annotate_graph(g, partitioned=config)
        ctx.remark(plan.text())
        for i, r in enumerate(results):
            for remark in r.remarks:
                ctx.remark(f"partition {i}: {remark}")
        return g


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


def _bad(name: str, value: Any) -> Any:
    from ..errors import Violation

    need = "a finite number >= 0 (model seconds)" if name == "inter_chip_latency" else "an integer >= 1"
    return Violation(f"partition option {name}", detail=f"must be {need}, got {value!r}")
