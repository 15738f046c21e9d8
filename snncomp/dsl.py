"""The Python DSL: declare a network with a builder, get a validated IR.

Example::

    net = snncomp.Network("yinyang")
    x = net.input("x", 5)
    h = net.lif("h", 120, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(0.0, 0.5, seed=0))
    net.connect(h, o, init=snncomp.init.normal(0.0, 0.1, seed=1))
    ir = net.build()

Every call validates what it can at once and fails there, naming the line of
the user's code that made the call.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
from pydantic import ValidationError

from .errors import DSLError
from .ir import Edge, IFNode, InputNode, LIFNode, LINode
from .ir import Network as IRNetwork
from .ir._arrays import ragged_detail
from .ir._io import diagnostics_from_validation_error

__all__ = ["Network", "Population"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_site() -> str:
    """``file:line`` of the first stack frame outside snncomp (the user's call)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        fname = os.path.abspath(frame.f_code.co_filename)
        if not fname.startswith(_PKG_DIR + os.sep):
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def _fail(what: str, reason: str) -> DSLError:
    return DSLError(f"{_user_site()}: {what}: {reason}")


@dataclass(frozen=True, eq=False)
class Population:
    """A handle to a declared population; pass it to :meth:`Network.connect`."""

    network: Network
    name: str
    kind: str
    size: int

    def __repr__(self) -> str:
        return f"Population({self.name!r}, kind={self.kind!r}, size={self.size}, network={self.network.name!r})"


class Network:
    """Builder for an :class:`snncomp.ir.Network`."""

    def __init__(self, name: str, *, metadata: dict[str, Any] | None = None):
        self.name = name
        self._nodes: list[Any] = []
        self._handles: dict[str, Population] = {}
        self._edges: list[Edge] = []
        self._outputs: list[str] = []
        self._metadata = dict(metadata or {})
        self._built: IRNetwork | None = None
        self._built_at = ""
        try:
            IRNetwork(name=name)
        except ValidationError as exc:
            raise _fail(f"Network({name!r})", _first_reason(exc, {"name": name})) from None

    # -- populations ----------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._built is not None:
            raise _fail(
                what,
                f"network '{self.name}' was already built (at {self._built_at}); "
                "declare everything before build(), or start a new snncomp.Network",
            )

    def _add(self, model: type, what: str, name: str, size: int, params: dict[str, Any]) -> Population:
        self._check_open(what)
        if name in self._handles:
            raise _fail(what, f"a population named '{name}' already exists in network '{self.name}'")
        raw = {"name": name, "size": size, **params}
        try:
            node = model(**raw)
        except ValidationError as exc:
            raise _fail(what, _first_reason(exc, raw)) from None
        self._nodes.append(node)
        handle = Population(self, name, node.kind, node.size)
        self._handles[name] = handle
        return handle

    def input(self, name: str, size: int) -> Population:
        """Declare ``size`` input channels; their spikes are given at run time."""
        return self._add(InputNode, f"input({name!r})", name, size, {})

    def lif(self, name: str, size: int, **params: Any) -> Population:
        """Declare LIF neurons; ``params`` are :class:`snncomp.ir.LIFNode` fields."""
        return self._add(LIFNode, f"lif({name!r})", name, size, params)

    def if_(self, name: str, size: int, **params: Any) -> Population:
        """Declare integrate-and-fire neurons (no leak); ``params`` are :class:`snncomp.ir.IFNode` fields."""
        return self._add(IFNode, f"if_({name!r})", name, size, params)

    def li(self, name: str, size: int, **params: Any) -> Population:
        """Declare leaky-integrator readouts; ``params`` are :class:`snncomp.ir.LINode` fields."""
        return self._add(LINode, f"li({name!r})", name, size, params)

    def output(self, *pops: Population | str) -> None:
        """Mark populations as the network's outputs (default: populations that feed nothing)."""
        self._check_open("output(...)")
        for p in pops:
            handle = self._resolve(p, "output(...)")
            if handle.kind == "input":
                raise _fail("output(...)", f"'{handle.name}' is an input and cannot be an output")
            if handle.name not in self._outputs:
                self._outputs.append(handle.name)

    # -- projections ----------------------------------------------------------
    def _resolve(self, ref: Population | str, what: str) -> Population:
        if isinstance(ref, Population):
            if ref.network is not self:
                raise _fail(what, f"population '{ref.name}' belongs to network '{ref.network.name}', not '{self.name}'")
            return ref
        if isinstance(ref, str):
            if ref not in self._handles:
                raise _fail(
                    what, f"no population named '{ref}' in network '{self.name}' (declared: {list(self._handles)})"
                )
            return self._handles[ref]
        raise _fail(what, f"expected a Population handle or a name, got {type(ref).__name__}")

    def connect(
        self,
        src: Population | str,
        dst: Population | str,
        *,
        weight: Any = None,
        init: Any = None,
        mask: Any = None,
        delay: float = 0.0,
        name: str | None = None,
        dtype: str = "float64",
    ) -> str:
        """Project ``src`` onto ``dst``; give ``weight`` (array or scalar) or ``init``.

        Returns the edge's key (its ``name``, or ``src->dst``).
        """
        s_name = getattr(src, "name", src)
        d_name = getattr(dst, "name", dst)
        what = f"connect({s_name!r}, {d_name!r})"
        self._check_open(what)
        s, d = self._resolve(src, what), self._resolve(dst, what)
        if d.kind == "input":
            raise _fail(what, f"target '{d.name}' is an input; projections cannot end at an input")
        shape = (s.size, d.size)
        if (weight is None) == (init is None):
            raise _fail(what, "give exactly one of weight=<array or scalar> or init=<snncomp.init initializer>")
        if init is not None:
            if not callable(init):
                raise _fail(what, f"init must be an initializer from snncomp.init, got {type(init).__name__}")
            w = _as_array(init(shape, dtype), what, "init result")
        else:
            w = _as_array(weight, what, "weight")
            if w.ndim == 0:
                w = np.full(shape, w, dtype=dtype if np.issubdtype(w.dtype, np.number) else None)
        if w.shape != shape:
            raise _fail(
                what,
                f"weight has shape {list(w.shape)} but must be [source size, target size] = {list(shape)}",
            )
        raw = {"source": s.name, "target": d.name, "weight": w, "mask": mask, "delay": delay, "name": name}
        try:
            edge = Edge(**raw)
        except ValidationError as exc:
            raise _fail(what, _first_reason(exc, raw)) from None
        keys = {e.name for e in self._edges if e.name}
        if name is not None and name in keys:
            raise _fail(what, f"an edge named '{name}' already exists")
        self._edges.append(edge)
        return name or f"{s.name}->{d.name}"

    # -- result ---------------------------------------------------------------
    def build(self) -> IRNetwork:
        """The validated, immutable IR. Calling it again returns the same network."""
        if self._built is not None:
            return self._built
        try:
            net = IRNetwork(
                name=self.name,
                nodes=tuple(self._nodes),
                edges=tuple(self._edges),
                outputs=tuple(self._outputs),
                metadata=self._metadata,
            )
        except ValidationError as exc:
            raise _fail("build()", _first_reason(exc, {})) from None
        self._built = net
        self._built_at = _user_site()
        return net

    def __getitem__(self, name: str) -> Population:
        return self._resolve(name, f"[{name!r}]")


def _as_array(value: Any, what: str, field: str) -> np.ndarray:
    """``np.asarray(value)``, failing with the DSL's prefix (a ragged list says where it is ragged)."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        ragged = ragged_detail(value)
        raise _fail(what, f"{field}: {ragged if ragged is not None else f'not an array: {exc}'}") from None


def _first_reason(exc: ValidationError, raw: Any) -> str:
    diags = diagnostics_from_validation_error(exc, raw)
    return "; ".join(str(d) for d in diags)
