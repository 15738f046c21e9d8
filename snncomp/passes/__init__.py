"""Compiler passes over a networkx graph of the IR, and the pass manager.

``snncomp.pipeline("jax")`` gives the default pipeline of a target; a pipeline
can also be written as a string: ``"verify,canonicalize,schedule{spikes_per_neuron=4}"``.
"""

from __future__ import annotations

from ._annotations import Schedule, Stage, Structure
from ._graph import (
    annotate_edge,
    annotate_graph,
    annotate_node,
    edge_annotations,
    from_graph,
    graph_annotations,
    node_annotations,
    rekey,
    to_graph,
)
from ._manager import CompileResult, PassManager, PassTiming, Pipeline, verify_graph
from ._pass import (
    Pass,
    PassContext,
    Remark,
    add_pass_module,
    format_pipeline,
    get_pass,
    make_pass,
    parse_pipeline,
    pass_options,
    register,
    registry,
)
from ._print import format_graph, graph_to_dot, graph_to_json

# Pipelines registered by name at run time; a target's own pipeline comes from its plug-in
# (:class:`snncomp.targets.Target`), so this layer names no target.
_PIPELINES: dict[str, str] = {}


def register_pipeline(target: str, text: str) -> None:
    """Make ``pipeline(target)`` return the pipeline described by ``text`` (before the target's own)."""
    _PIPELINES[target] = text


def _pipeline_text(target: str) -> str:
    from ..errors import PipelineError, TargetError
    from ..targets import get, names

    if target in _PIPELINES:
        return _PIPELINES[target]
    try:
        plugin = get(target)
    except TargetError as exc:
        import difflib

        known = sorted({*_PIPELINES, *names()})
        close = difflib.get_close_matches(target, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        reason = "" if str(exc).startswith("unknown target") else f" ({exc})"
        raise PipelineError(
            f"no pipeline for target {target!r}{reason}; known targets: {', '.join(known)}{hint}"
        ) from None
    if plugin.pipeline is None:
        raise PipelineError(f"target {target!r} has no pass pipeline")
    return plugin.pipeline


def pipeline(target: str = "jax", **options: object) -> Pipeline:
    """The default pipeline of ``target`` (``"jax"``, ``"bss2"``, ``"bss2-mock"``, or any plug-in target's).

    The name must match exactly; an unknown one is a :class:`~snncomp.errors.PipelineError`
    naming the known targets and the closest one. ``options`` set pass options by name on
    every pass of the pipeline that has such an option (``pipeline("jax", spikes_per_neuron=4)``);
    an option that no pass has is an error listing the valid ones.
    """
    import dataclasses

    from ..errors import PipelineError

    if not isinstance(target, str):
        raise PipelineError(f"target must be a string such as 'jax', got {target!r}")
    passes = list(Pipeline(_pipeline_text(target)).passes)
    valid: set[str] = set()
    for i, p in enumerate(passes):
        names = {f.name for f in dataclasses.fields(p)}
        valid |= names
        mine = {k: v for k, v in options.items() if k in names}
        if mine:
            passes[i] = make_pass(p.name, {**{f: getattr(p, f) for f in names}, **mine})
    unknown = sorted(set(options) - valid)
    if unknown:
        raise PipelineError(
            f"pipeline '{target}' has no pass option {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(sorted(valid)) or '(none)'}"
        )
    return Pipeline(passes)


__all__ = [
    "CompileResult",
    "Pass",
    "PassContext",
    "PassManager",
    "PassTiming",
    "Pipeline",
    "Remark",
    "Schedule",
    "Stage",
    "Structure",
    "add_pass_module",
    "annotate_edge",
    "annotate_graph",
    "annotate_node",
    "edge_annotations",
    "format_graph",
    "format_pipeline",
    "from_graph",
    "get_pass",
    "graph_annotations",
    "graph_to_dot",
    "graph_to_json",
    "make_pass",
    "node_annotations",
    "parse_pipeline",
    "pass_options",
    "pipeline",
    "register",
    "register_pipeline",
    "registry",
    "rekey",
    "to_graph",
    "verify_graph",
]
