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

_PIPELINES: dict[str, str] = {
    "jax": "verify,infer-shapes,canonicalize,analyze-structure,schedule",
}


def register_pipeline(target: str, text: str) -> None:
    """Make ``pipeline(target)`` return the pipeline described by ``text``."""
    _PIPELINES[target] = text


def pipeline(target: str = "jax", **options: object) -> Pipeline:
    """The default pipeline of ``target`` (``"jax"``; ``"bss2"`` once that target is installed).

    ``options`` set pass options by name on every pass of the pipeline that has
    such an option (``pipeline("jax", spikes_per_neuron=4)``); an option that no
    pass has is an error listing the valid ones.
    """
    import dataclasses

    from ..errors import PipelineError

    key = "bss2" if target.startswith("bss2") else target
    if key not in _PIPELINES and key == "bss2":
        # Targets register their pipelines when imported.
        import contextlib

        with contextlib.suppress(ImportError):
            import snncomp.targets.bss2  # noqa: F401
    if key not in _PIPELINES:
        raise PipelineError(f"no pipeline for target '{target}'; known targets: {', '.join(sorted(_PIPELINES))}")
    passes = list(Pipeline(_PIPELINES[key]).passes)
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
