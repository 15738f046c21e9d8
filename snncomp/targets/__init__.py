"""Execution targets as plug-ins: the table of targets and the :class:`Target` each one exports.

A target is one object (:class:`Target`) that carries everything the generic layers need from it:
its name, how to compile a network for it, its pass pipeline, the checks of the annotations its passes
write, its pictures and report, and its command-line commands. ``snncomp.compile``,
``snncomp.pipeline``, the ``verify`` pass, ``graph_to_dot`` and the CLI ask this table and never name
a target package, so a target plugs in without touching them.

The built-in targets (``jax``, ``bss2-mock``, and ``bss2``, the real chip, which is not reachable
here) load on first use. A third-party package adds a target through the ``snncomp.targets``
entry-point group (the Python packaging convention for plug-ins), e.g. in its ``pyproject.toml``::

    [project.entry-points."snncomp.targets"]
    mytarget = "mypackage.snncomp_target:TARGET"

where ``TARGET`` is a :class:`Target`; or at run time with :func:`register`. This module imports
nothing heavy: a target's own modules load when it is first asked for.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import TargetError

__all__ = ["ENTRY_POINT_GROUP", "Target", "every", "get", "loaded", "names", "register"]

ENTRY_POINT_GROUP = "snncomp.targets"


@dataclass(frozen=True)
class Target:
    """One execution target, as the generic layers see it.

    ``compile(network, **options)`` returns an ``Executable`` (``None`` with ``unavailable``: the
    target exists but cannot be used here, and ``unavailable`` says why). ``pipeline``: the text of its
    default pass pipeline (``snncomp.pipeline(name)``). ``check_annotations(graph)`` returns the
    problems of the graph annotations its passes write (``[]`` where there are none: it is asked about
    every graph). ``dot_lines(graph)``: extra Graphviz lines for ``graph_to_dot``. ``report(result)``:
    text that ``snncomp compile --target NAME`` prints after the IR. ``save_artifact(result, path)``:
    writes the target's artifact for ``snncomp compile -o`` and returns True, or returns False to let
    the compiled IR be written. ``cli``: modules whose ``add_commands(subparsers)`` adds commands.
    """

    name: str
    compile: Callable[..., Any] | None = None
    pipeline: str | None = None
    summary: str = ""
    unavailable: str | None = None
    check_annotations: Callable[[Any], list[str]] | None = None
    dot_lines: Callable[[Any], list[str]] | None = None
    report: Callable[[Any], str] | None = None
    save_artifact: Callable[[Any, str], bool] | None = None
    cli: tuple[str, ...] = ()
    pass_modules: tuple[str, ...] = ()


# Built-in targets: ``module:attribute`` of their Target, imported on first use.
_BUILTIN: dict[str, str] = {
    "jax": "snncomp.targets.jax_event._plugin:TARGET",
    "bss2": "snncomp.targets.bss2._plugin:CHIP",
    "bss2-mock": "snncomp.targets.bss2._plugin:MOCK",
}
_REGISTERED: dict[str, Target] = {}
_LOADED: dict[str, Target] = {}
_ENTRY_POINTS: list[Any] = []  # read once per process (scanning installed packages is not free)
_SCANNED: list[bool] = []


def register(target: Target) -> None:
    """Add (or replace) a target at run time; ``snncomp.compile(net, target=target.name)`` then finds it."""
    if not isinstance(target, Target):
        raise TargetError(f"register: expected a snncomp.targets.Target, got {type(target).__name__}")
    _REGISTERED[target.name] = target
    _LOADED[target.name] = target


def _entry_points() -> list[Any]:
    if not _SCANNED:
        from importlib.metadata import entry_points

        _ENTRY_POINTS.extend(entry_points(group=ENTRY_POINT_GROUP))
        _SCANNED.append(True)
    return _ENTRY_POINTS


def names() -> list[str]:
    """Every target name known here (built in, registered, or from an installed package), sorted."""
    return sorted({*_BUILTIN, *_REGISTERED, *(ep.name for ep in _entry_points())})


def _load(spec: str, name: str) -> Target:
    module, _, attr = spec.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise TargetError(f"target {name!r} could not be loaded from {spec!r}: {exc}") from None
    if not isinstance(obj, Target) or obj.name != name:
        raise TargetError(f"target {name!r}: {spec!r} is not a snncomp.targets.Target named {name!r}")
    return obj


def get(name: str) -> Target:
    """The target called ``name`` (exact match), loading it on first use; a ``TargetError`` otherwise."""
    if not isinstance(name, str):
        raise TargetError(f"target must be a string such as 'jax', got {name!r}")
    if name in _LOADED:
        return _LOADED[name]
    if name in _BUILTIN:
        target = _load(_BUILTIN[name], name)
    else:
        eps = [ep for ep in _entry_points() if ep.name == name]
        if not eps:
            known = names()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TargetError(f"unknown target {name!r}; known targets: {', '.join(known)}{hint}")
        target = _load(eps[0].value, name)
    _LOADED[name] = target
    return target


def loaded() -> Iterator[Target]:
    """The targets loaded so far (their passes may have annotated a graph)."""
    return iter(list(_LOADED.values()))


def every() -> Iterator[Target]:
    """Every known target, loading those not loaded yet (for what needs all of them: pass lookup, CLI)."""
    return iter([get(name) for name in names()])
