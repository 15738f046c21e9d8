"""Passes, the pass registry, and pipeline strings.

A pass is a frozen dataclass with a kebab-case ``name`` class attribute; its
fields are its options, so ``quantize{bits=6, saturate=clip}`` maps straight
onto ``Quantize(bits=6, saturate="clip")``. ``run(graph, ctx)`` returns a new
graph and never mutates its input.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar

import networkx as nx

from ..errors import PipelineError

__all__ = [
    "Pass",
    "PassContext",
    "Remark",
    "format_pipeline",
    "get_pass",
    "parse_pipeline",
    "register",
    "registry",
]


@dataclass(frozen=True)
class Remark:
    """One line a pass wants the user to see (what it changed and why)."""

    pass_name: str
    message: str

    def __str__(self) -> str:
        return f"[{self.pass_name}] {self.message}"


@dataclass
class PassContext:
    """What passes share during one compilation: compile options and the log."""

    options: dict[str, Any] = field(default_factory=dict)
    remarks: list[Remark] = field(default_factory=list)
    current: str = ""
    pipeline: str = ""  # the running pipeline's text (a pass that lowers sub-networks reuses it)

    def remark(self, message: str) -> None:
        """Record a remark from the running pass."""
        self.remarks.append(Remark(self.current, message))


@dataclass(frozen=True)
class Pass(abc.ABC):
    """Base of every pass: ``name``, what it ``requires`` and ``ensures``, and ``run``."""

    name: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    ensures: ClassVar[tuple[str, ...]] = ()
    # Properties a pass breaks, so later passes that require them must be re-run.
    invalidates: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        """Return a new graph; never mutate ``graph``."""

    def __str__(self) -> str:
        return format_pipeline([self])


_P = TypeVar("_P", bound=type[Pass])
_REGISTRY: dict[str, type[Pass]] = {}
# Modules that register passes when imported; imported on first registry lookup.
_PASS_MODULES = (
    "snncomp.passes.verify",
    "snncomp.passes.infer_shapes",
    "snncomp.passes.canonicalize",
    "snncomp.passes.analyze_structure",
    "snncomp.passes.schedule",
)
_EXTRA_MODULES: list[str] = []


def register(cls: _P) -> _P:
    """Class decorator adding a pass to the registry under its ``name``."""
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise TypeError(f"pass {cls.__name__} needs a kebab-case class attribute 'name', got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"pass name '{name}' is registered twice ({_REGISTRY[name].__name__}, {cls.__name__})")
    _REGISTRY[name] = cls
    return cls


def add_pass_module(module: str) -> None:
    """Let a target contribute passes, imported lazily on first lookup."""
    if module not in _EXTRA_MODULES:
        _EXTRA_MODULES.append(module)


def registry() -> dict[str, type[Pass]]:
    """Every registered pass by name, alphabetical."""
    from ..targets import every

    # Targets contribute their passes through their plug-ins (snncomp.targets.Target.pass_modules).
    target_modules = [m for target in every() for m in target.pass_modules]
    for mod in dict.fromkeys((*_PASS_MODULES, *_EXTRA_MODULES, *target_modules)):
        importlib.import_module(mod)
    return dict(sorted(_REGISTRY.items()))


def get_pass(name: str) -> type[Pass]:
    """The pass class called ``name``; the error lists the valid names."""
    passes = registry()
    if name not in passes:
        import difflib

        close = difflib.get_close_matches(name, list(passes), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise PipelineError(f"unknown pass '{name}'.{hint} Available passes: {', '.join(passes)}")
    return passes[name]


# -- pipeline strings ----------------------------------------------------------
_ITEM = re.compile(r"\s*([a-z][a-z0-9-]*)\s*(?:\{([^{}]*)\})?\s*(?:,|$)")


def _convert(pass_name: str, opt: str, raw: str, typ: Any) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    text = raw.strip()
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _convert(pass_name, opt, raw, a)
            except PipelineError as exc:
                errors.append(str(exc))
        raise PipelineError(errors[0] if errors else f"{pass_name}{{{opt}=...}}: cannot parse {raw!r}")
    if origin is Literal:
        allowed = [str(a) for a in args]
        if text not in allowed:
            raise PipelineError(f"{pass_name}{{{opt}={text}}}: must be one of {', '.join(allowed)}")
        return next(a for a in args if str(a) == text)
    if typ is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise PipelineError(f"{pass_name}{{{opt}={text}}}: expected true or false")
    if typ in (int, float):
        try:
            return typ(text)
        except ValueError:
            raise PipelineError(f"{pass_name}{{{opt}={text}}}: expected {typ.__name__}") from None
    if typ is str:
        return text
    raise PipelineError(f"{pass_name}{{{opt}}}: option type {typ} cannot be given in a pipeline string")


def make_pass(name: str, options: dict[str, Any]) -> Pass:
    """Instantiate pass ``name`` with options; unknown options list the valid ones."""
    cls = get_pass(name)
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(fields) if fields else "(none)"
        raise PipelineError(
            f"pass '{name}' has no option {', '.join(repr(u) for u in unknown)}; valid options: {valid}"
        )
    return cls(**{k: _convert(name, k, v, fields[k]) if isinstance(v, str) else v for k, v in options.items()})


def parse_pipeline(text: str) -> list[Pass]:
    """Parse ``"verify,canonicalize,quantize{bits=6,saturate=clip}"`` into pass objects."""
    passes: list[Pass] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"cannot parse pipeline at character {pos}: {text[pos:]!r}")
        name, body = m.group(1), m.group(2)
        options: dict[str, str] = {}
        if body and body.strip():
            for part in body.split(","):
                key, eq, value = part.partition("=")
                if not eq or not key.strip():
                    raise PipelineError(f"{name}{{{body}}}: options are written key=value, got {part.strip()!r}")
                options[key.strip()] = value.strip()
        passes.append(make_pass(name, options))
        pos = m.end()
    return passes


def format_pipeline(passes: Iterable[Pass]) -> str:
    """The pipeline string that parses back to ``passes`` (non-default options only)."""
    items = []
    for p in passes:
        opts = []
        for f in dataclasses.fields(p):
            value = getattr(p, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            if value != default:
                opts.append(f"{f.name}={str(value).lower() if isinstance(value, bool) else value}")
        items.append(p.name + (f"{{{','.join(opts)}}}" if opts else ""))
    return ",".join(items)


def pass_options(cls: type[Pass]) -> list[tuple[str, str, Any]]:
    """(name, type, default) for each option of a pass (for docs and --help)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        typ = hints[f.name]
        if typing.get_origin(typ) is Literal:
            name = " | ".join(repr(a) for a in typing.get_args(typ))
        else:
            name = getattr(typ, "__name__", None) or str(typ).replace("typing.", "")
        if typing.get_origin(typ) in (typing.Union, types.UnionType):
            name = str(typ).replace("typing.", "")
        out.append((f.name, name, default))
    return out
