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
# Targets that share another target's pipeline: the chip emulator compiles as the chip does.
_ALIASES: dict[str, str] = {"bss2-mock": "bss2"}
# Targets whose package registers their pipeline when imported (imported on first use only).
_LAZY_PIPELINES: dict[str, str] = {"bss2": "snncomp.targets.bss2"}


def register_pipeline(target: str, text: str) -> None:
    """Make ``pipeline(target)`` return the pipeline described by ``text``."""
    _PIPELINES[target] = text


def _load_lazy(key: str) -> None:
    if key in _PIPELINES or key not in _LAZY_PIPELINES:
        return
    import contextlib
    import importlib

    with contextlib.suppress(ImportError):
        importlib.import_module(_LAZY_PIPELINES[key])


def _pipeline_targets() -> list[str]:
    """The target names :func:`pipeline` accepts (sorted; importing targets whose package is installed)."""
    for key in _LAZY_PIPELINES:
        _load_lazy(key)
    return sorted({*_PIPELINES, *(alias for alias, key in _ALIASES.items() if key in _PIPELINES)})


def pipeline(target: str = "jax", **options: object) -> Pipeline:
    """The default pipeline of ``target``: ``"jax"``, or ``"bss2"`` / ``"bss2-mock"`` once that target is installed.

    The name must match exactly; an unknown one is a :class:`~snncomp.errors.PipelineError`
    naming the known targets and the closest one. ``options`` set pass options by name on
    every pass of the pipeline that has such an option (``pipeline("jax", spikes_per_neuron=4)``);
    an option that no pass has is an error listing the valid ones.
    """
    import dataclasses
    import difflib

    from ..errors import PipelineError

    if not isinstance(target, str):
        raise PipelineError(f"target must be a string such as 'jax', got {target!r}")
    key = _ALIASES.get(target, target)
    _load_lazy(key)
    if key not in _PIPELINES:
        known = _pipeline_targets()
        close = difflib.get_close_matches(target, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        extra = f" ({target!r} needs the {key!r} target package)" if key in _LAZY_PIPELINES else ""
        raise PipelineError(f"no pipeline for target {target!r}{extra}; known targets: {', '.join(known)}{hint}")
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
