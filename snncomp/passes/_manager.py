"""The pass manager: runs passes in order, verifies, times and dumps each stage."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import PassError, SnnCompError
from ..ir import Network
from ._graph import from_graph, to_graph
from ._pass import Pass, PassContext, Remark, format_pipeline, parse_pipeline
from ._print import format_graph, graph_to_dot, graph_to_json

__all__ = ["CompileResult", "PassManager", "PassTiming", "Pipeline"]


@dataclass(frozen=True)
class PassTiming:
    """Wall time of one pass (and of the verification after it)."""

    name: str
    seconds: float
    verify_seconds: float


@dataclass
class CompileResult:
    """What a pipeline produced: the final graph and network, timings, remarks, stage dumps."""

    graph: nx.MultiDiGraph
    network: Network
    timings: list[PassTiming]
    remarks: list[Remark]
    stages: list[tuple[str, nx.MultiDiGraph]] = field(default_factory=list)

    @property
    def annotations(self) -> dict[str, Any]:
        """Graph-level annotations of the final graph (``structure``, ``schedule``, ...)."""
        return self.graph.graph["ann"]

    def text(self) -> str:
        """The final graph's text form."""
        return format_graph(self.graph)


def verify_graph(g: nx.MultiDiGraph) -> None:
    """Raise if the graph does not hold a valid network or its annotations are inconsistent."""
    from .verify import check_annotations

    from_graph(g)  # re-validates every IR invariant (Pydantic)
    problems = check_annotations(g)
    if problems:
        raise SnnCompError("; ".join(problems))


class PassManager:
    """Run ``passes`` over a network or graph.

    ``verify_each`` re-validates the graph before the first pass and after each
    one. ``print_after_all`` dumps the text form after each pass (True: to
    stdout; or a callable taking the text). ``dump_dir`` writes each stage as
    ``NN-<pass>.txt``, ``.dot`` and ``.json``. ``assume_ensured`` names properties
    the input already has (e.g. ``result.graph.graph["ensured"]`` of an earlier
    run), so a pass can run on a graph that is already lowered.
    """

    def __init__(
        self,
        passes: Sequence[Pass] | str,
        *,
        verify_each: bool = True,
        print_after_all: bool | Callable[[str], None] = False,
        dump_dir: str | Path | None = None,
        keep_stages: bool = False,
        assume_ensured: Iterable[str] = (),
    ):
        self.passes: list[Pass] = parse_pipeline(passes) if isinstance(passes, str) else list(passes)
        self.verify_each = verify_each
        self.print_after_all = print_after_all
        self.dump_dir = Path(dump_dir) if dump_dir is not None else None
        self.keep_stages = keep_stages
        self._check_requirements(frozenset(assume_ensured))

    def _check_requirements(self, already: frozenset[str] = frozenset()) -> None:
        have: set[str] = set(already)
        for i, p in enumerate(self.passes):
            missing = [r for r in p.requires if r not in have]
            if missing:
                providers = sorted({q.name for q in _all_passes() if set(missing) & set(q.ensures)})
                hint = f"; run {' or '.join(repr(x) for x in providers)} before it" if providers else ""
                raise PassError(
                    f"pass '{p.name}' (position {i}) requires {', '.join(missing)}, "
                    f"which no earlier pass in '{format_pipeline(self.passes)}' ensures{hint}"
                )
            have -= set(p.invalidates)
            have |= set(p.ensures)

    def _emit(self, title: str, g: nx.MultiDiGraph) -> None:
        if not self.print_after_all:
            return
        text = f"// ----- IR after {title} ----- //\n{format_graph(g)}\n"
        if callable(self.print_after_all):
            self.print_after_all(text)
        else:
            sys.stdout.write(text)

    def _dump(self, index: int, name: str, g: nx.MultiDiGraph) -> None:
        if self.dump_dir is None:
            return
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        stem = self.dump_dir / f"{index:02d}-{name}"
        stem.with_suffix(".txt").write_text(format_graph(g) + "\n")
        stem.with_suffix(".dot").write_text(graph_to_dot(g))
        stem.with_suffix(".json").write_text(graph_to_json(g))

    def run(self, source: Network | nx.MultiDiGraph, options: dict[str, Any] | None = None) -> CompileResult:
        """Run every pass; errors name the failing pass and the passes before it."""
        g = to_graph(source) if isinstance(source, Network) else source
        ctx = PassContext(options=dict(options or {}), pipeline=format_pipeline(self.passes))
        timings: list[PassTiming] = []
        stages: list[tuple[str, nx.MultiDiGraph]] = []
        if self.verify_each:
            try:
                verify_graph(g)
            except SnnCompError as exc:
                raise PassError(f"the input graph is invalid: {exc}") from exc
        self._emit("input", g)
        self._dump(0, "input", g)
        done: list[str] = []
        for i, p in enumerate(self.passes, start=1):
            ctx.current = p.name
            before = "none" if not done else ", ".join(done)
            t0 = time.perf_counter()
            try:
                out = p.run(g, ctx)
            except SnnCompError as exc:
                raise PassError(f"pass '{p.name}' failed: {exc}\n  passes that ran before it: {before}") from exc
            except Exception as exc:  # a bug in a pass: still say which pass
                raise PassError(
                    f"pass '{p.name}' crashed with {type(exc).__name__}: {exc}\n  passes that ran before it: {before}"
                ) from exc
            t1 = time.perf_counter()
            out.graph["ensured"] = (out.graph.get("ensured", frozenset()) - set(p.invalidates)) | set(p.ensures)
            if self.verify_each:
                try:
                    verify_graph(out)
                except SnnCompError as exc:
                    raise PassError(
                        f"verification failed after pass '{p.name}': {exc}\n  passes that ran before it: {before}"
                    ) from exc
            t2 = time.perf_counter()
            timings.append(PassTiming(p.name, t1 - t0, t2 - t1))
            done.append(p.name)
            self._emit(f"'{p.name}'", out)
            self._dump(i, p.name, out)
            if self.keep_stages:
                stages.append((p.name, out))
            g = out
        return CompileResult(graph=g, network=from_graph(g), timings=timings, remarks=ctx.remarks, stages=stages)


def _all_passes() -> list[type[Pass]]:
    from ._pass import registry

    return list(registry().values())


class Pipeline:
    """A named, printable sequence of passes (``snncomp.pipeline("jax")``)."""

    def __init__(self, passes: Sequence[Pass] | str):
        self.passes: tuple[Pass, ...] = tuple(parse_pipeline(passes) if isinstance(passes, str) else passes)

    def __str__(self) -> str:
        return format_pipeline(self.passes)

    def __repr__(self) -> str:
        return f"Pipeline({str(self)!r})"

    def __iter__(self) -> Iterator[Pass]:
        return iter(self.passes)

    def __len__(self) -> int:
        return len(self.passes)

    def run(self, source: Network | nx.MultiDiGraph, **kwargs: Any) -> CompileResult:
        """Run the pipeline with a :class:`PassManager` (``kwargs`` go to it; ``options`` to passes)."""
        options = kwargs.pop("options", None)
        return PassManager(self.passes, **kwargs).run(source, options)
