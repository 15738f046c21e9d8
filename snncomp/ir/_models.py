"""The typed IR: populations (nodes), projections (edges) and the network.

Units: time in SI seconds of model time; voltages in model units where the
usual choice is ``v_leak = 0`` and ``v_threshold = 1``; currents in the same
units as voltages (the synaptic current ``I`` enters ``dv/dt`` divided by
``tau_mem``, so a weight is the voltage step it would cause if ``tau_syn``
were infinitely long). Parameter names follow NIR (CubaLIF/CubaLI).

One topic, kept whole (~480 lines): every IR model with its validation, so that the schema a user reads
(``snncomp schema``) has one source.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ._arrays import MaskSpec, ParamSpec, WeightSpec, values_equal

__all__ = [
    "IR_VERSION",
    "NODE_KINDS",
    "SPIKING_KINDS",
    "SUPPORTED_IR_VERSIONS",
    "Edge",
    "IFNode",
    "InputNode",
    "LIFNode",
    "LINode",
    "Network",
    "Node",
    "Param",
]

IR_VERSION = 1
SUPPORTED_IR_VERSIONS = (1,)

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"

Param = Annotated[float | np.ndarray, ParamSpec]
"""A neuron parameter: one scalar for the population, or one value per neuron."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=200)]
Size = Annotated[StrictInt, Field(ge=1, description="number of neurons (or input channels)")]


class FrozenModel(BaseModel):
    """Frozen, closed Pydantic model with array-aware equality (IR nodes, target annotations)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return all(values_equal(getattr(self, f), getattr(other, f)) for f in type(self).model_fields)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.model_dump_json()))


_IRModel = FrozenModel


def _check_param(errors: list[str], node: Any, field: str, *, gt: float | None = None, ge: float | None = None) -> None:
    value = getattr(node, field)
    arr = np.asarray(value)
    if isinstance(value, np.ndarray) and value.shape != (node.size,):
        errors.append(f"{field}: per-neuron array has length {value.shape[0]} but the population has size {node.size}")
        return
    if gt is not None and (arr <= gt).any():
        bad = arr[arr <= gt].reshape(-1)[0]
        where = "" if arr.ndim == 0 else f" (neuron {int(np.argwhere(arr <= gt)[0][0])})"
        errors.append(f"{field}: must be > {gt:g}, got {float(bad)!r}{where}")
    if ge is not None and (arr < ge).any():
        bad = arr[arr < ge].reshape(-1)[0]
        where = "" if arr.ndim == 0 else f" (neuron {int(np.argwhere(arr < ge)[0][0])})"
        errors.append(f"{field}: must be >= {ge:g}, got {float(bad)!r}{where}")


def _check_tau_syn(errors: list[str], node: Any) -> None:
    """``tau_syn`` is > 0 for every neuron, or 0 for every neuron (instantaneous synapses)."""
    ts = np.asarray(node.tau_syn)
    if isinstance(node.tau_syn, np.ndarray) and node.tau_syn.shape != (node.size,):
        _check_param(errors, node, "tau_syn")
        return
    if np.all(ts == 0):
        return
    if np.any(ts == 0):
        idx = int(np.argwhere(np.broadcast_to(ts == 0, (node.size,)))[0][0])
        errors.append(
            f"tau_syn: 0 (instantaneous synapses) must hold for the whole population or for none, got 0 for "
            f"neuron {idx} only; split the population"
        )
        return
    _check_param(errors, node, "tau_syn", gt=0)


def _raise_node_errors(node: Any, errors: list[str]) -> None:
    if errors:
        raise PydanticCustomError(
            "node_invalid",
            "{problems}",
            {"problems": "; ".join(errors)},
        )


class InputNode(_IRModel):
    """A spike source of ``size`` channels; spikes are given at run time."""

    kind: Literal["input"] = "input"
    name: Name
    size: Size


class LIFNode(_IRModel):
    """Current-based leaky integrate-and-fire neurons (NIR's CubaLIF).

    Per neuron, between spikes::

        tau_mem dv/dt = -(v - v_leak) + I          [tau_mem in s]
        tau_syn dI/dt = -I                         [tau_syn in s]

    An incoming spike through weight ``w`` (after the projection's delay) sets
    ``I <- I + w``. When ``v`` crosses ``v_threshold`` from below the neuron
    spikes, ``v <- v_reset`` and ``v`` is held at ``v_reset`` for ``t_refrac``
    seconds (``I`` keeps evolving). After its ``max_spikes``-th spike in a run a
    neuron stays silent (``None``: unbounded). At ``t = 0``: ``v = v_leak``,
    ``I = 0``. Voltages are in model units (commonly ``v_leak = 0``,
    ``v_threshold = 1``).

    ``tau_syn = 0`` (for the whole population) means instantaneous synapses (NIR's
    ``LIF``): there is no current, an incoming spike sets ``v <- v + w``, and the
    threshold is tested after every input arriving at that instant has been added
    (simultaneous inputs sum). ``bias`` is a constant input entering where spikes
    enter: ``tau_syn dI/dt = -I + bias`` (``I`` relaxes from 0 towards ``bias``),
    or with ``tau_syn = 0``, ``tau_mem dv/dt = -(v - v_leak) + bias``; either way
    ``v`` settles at ``v_leak + bias``. That rest may lie at or above threshold
    (tonic firing) only with ``tau_syn = 0``.
    """

    kind: Literal["lif"] = "lif"
    name: Name
    size: Size
    tau_mem: Param = Field(description="membrane time constant [s], > 0")
    tau_syn: Param = Field(description="synaptic current time constant [s], > 0; 0 = instantaneous synapses")
    v_threshold: Param = Field(default=1.0, description="spike threshold [model voltage]")
    v_leak: Param = Field(default=0.0, description="resting potential [model voltage], < v_threshold")
    v_reset: Param = Field(default=0.0, description="reset potential [model voltage], < v_threshold")
    t_refrac: Param = Field(default=0.0, description="refractory period [s], >= 0")
    bias: Param = Field(default=0.0, description="constant input [model voltage]; v settles at v_leak + bias")
    max_spikes: Annotated[StrictInt, Field(ge=1)] | None = Field(
        default=None, description="spikes per neuron per run; null = unbounded"
    )

    @property
    def instantaneous(self) -> bool:
        """Whether the synapses are instantaneous (``tau_syn = 0``: inputs jump ``v``)."""
        return bool(np.all(np.asarray(self.tau_syn) == 0))

    @model_validator(mode="after")
    def _check(self) -> LIFNode:
        errors: list[str] = []
        _check_param(errors, self, "tau_mem", gt=0)
        _check_tau_syn(errors, self)
        _check_param(errors, self, "t_refrac", ge=0)
        for f in ("v_threshold", "v_leak", "v_reset", "bias"):
            _check_param(errors, self, f)
        if not errors and not self.instantaneous:
            rest = np.broadcast_to(np.asarray(self.v_leak) + np.asarray(self.bias), (self.size,))
            bad = rest >= np.broadcast_to(np.asarray(self.v_threshold), (self.size,))
            if bad.any() and np.any(np.asarray(self.bias) != 0):
                idx = int(np.argwhere(bad)[0][0])
                errors.append(
                    f"bias: v_leak + bias must be < v_threshold with a synaptic current (tau_syn > 0), got "
                    f"{float(rest[idx])!r} >= {float(np.broadcast_to(self.v_threshold, (self.size,))[idx])!r} "
                    f"(neuron {idx}); a tonically firing neuron is supported with instantaneous synapses (tau_syn=0)"
                )
        if not errors:
            thr = np.asarray(self.v_threshold)
            for f, why in (
                ("v_reset", "a reset at or above threshold would fire again at once"),
                ("v_leak", "the neuron would fire without any input"),
            ):
                bad = np.asarray(getattr(self, f)) >= thr
                if bad.any():
                    idx = np.argwhere(np.broadcast_to(bad, (self.size,)))[0][0]
                    val = np.broadcast_to(np.asarray(getattr(self, f)), (self.size,))[idx]
                    per_neuron = isinstance(getattr(self, f), np.ndarray) or isinstance(self.v_threshold, np.ndarray)
                    where = f" (neuron {int(idx)})" if per_neuron else ""
                    errors.append(
                        f"{f}: must be < v_threshold, got {f}={float(val)!r} >= "
                        f"v_threshold={float(np.broadcast_to(thr, (self.size,))[idx])!r}{where}; {why}"
                    )
        _raise_node_errors(self, errors)
        return self


class LINode(_IRModel):
    """Leaky integrator readout (NIR's CubaLI): the LIF dynamics without threshold.

    Per neuron::

        tau_mem dv/dt = -(v - v_leak) + I          [tau_mem in s]
        tau_syn dI/dt = -I                         [tau_syn in s]

    An incoming spike through weight ``w`` sets ``I <- I + w``. It never spikes;
    its membrane trace ``v(t)`` is the output. At ``t = 0``: ``v = v_leak``, ``I = 0``.
    ``tau_syn = 0`` means instantaneous synapses (NIR's ``LI``: a spike sets
    ``v <- v + w``); ``bias`` is a constant input as for ``lif``.
    """

    kind: Literal["li"] = "li"
    name: Name
    size: Size
    tau_mem: Param = Field(description="membrane time constant [s], > 0")
    tau_syn: Param = Field(description="synaptic current time constant [s], > 0; 0 = instantaneous synapses")
    v_leak: Param = Field(default=0.0, description="resting potential [model voltage]")
    bias: Param = Field(default=0.0, description="constant input [model voltage]; v settles at v_leak + bias")

    @property
    def instantaneous(self) -> bool:
        """Whether the synapses are instantaneous (``tau_syn = 0``: inputs jump ``v``)."""
        return bool(np.all(np.asarray(self.tau_syn) == 0))

    @model_validator(mode="after")
    def _check(self) -> LINode:
        errors: list[str] = []
        _check_param(errors, self, "tau_mem", gt=0)
        _check_tau_syn(errors, self)
        _check_param(errors, self, "v_leak")
        _check_param(errors, self, "bias")
        _raise_node_errors(self, errors)
        return self


class IFNode(_IRModel):
    """Integrate-and-fire neurons without leak, with instantaneous synapses (NIR's ``IF``).

    Per neuron, between input spikes::

        dv/dt = bias                               [bias in model voltage per s]

    An incoming spike through weight ``w`` sets ``v <- v + w``; the threshold is
    tested after every input arriving at that instant has been added. When ``v``
    reaches ``v_threshold`` the neuron spikes, ``v <- v_reset``, and ``v`` is held
    there for ``t_refrac`` seconds. At ``t = 0``: ``v = 0``.
    """

    kind: Literal["if"] = "if"
    name: Name
    size: Size
    v_threshold: Param = Field(default=1.0, description="spike threshold [model voltage], > 0")
    v_reset: Param = Field(default=0.0, description="reset potential [model voltage], < v_threshold")
    t_refrac: Param = Field(default=0.0, description="refractory period [s], >= 0")
    bias: Param = Field(default=0.0, description="constant drift dv/dt [model voltage per s]")
    max_spikes: Annotated[StrictInt, Field(ge=1)] | None = Field(
        default=None, description="spikes per neuron per run; null = unbounded"
    )

    @property
    def instantaneous(self) -> bool:
        """Always True: the membrane jumps by the weight."""
        return True

    @model_validator(mode="after")
    def _check(self) -> IFNode:
        errors: list[str] = []
        _check_param(errors, self, "v_threshold", gt=0)
        _check_param(errors, self, "t_refrac", ge=0)
        for f in ("v_reset", "bias"):
            _check_param(errors, self, f)
        if not errors:
            thr = np.broadcast_to(np.asarray(self.v_threshold), (self.size,))
            bad = np.broadcast_to(np.asarray(self.v_reset), (self.size,)) >= thr
            if bad.any():
                idx = int(np.argwhere(bad)[0][0])
                errors.append(
                    f"v_reset: must be < v_threshold, got v_reset="
                    f"{float(np.broadcast_to(self.v_reset, (self.size,))[idx])!r} >= v_threshold="
                    f"{float(thr[idx])!r} (neuron {idx}); a reset at or above threshold would fire again at once"
                )
        _raise_node_errors(self, errors)
        return self


Node = Annotated[InputNode | LIFNode | LINode | IFNode, Field(discriminator="kind")]
"""Any population; the ``kind`` field selects the model."""

NODE_KINDS: dict[str, type[_IRModel]] = {"input": InputNode, "lif": LIFNode, "li": LINode, "if": IFNode}

SPIKING_KINDS: tuple[str, ...] = ("lif", "if")
"""Node kinds that spike (have a threshold); ``li`` readouts and inputs do not."""


class Edge(_IRModel):
    """A projection: dense weights from every source neuron to every target neuron.

    ``weight[i, j]`` is added to target neuron ``j``'s current ``I`` when source
    neuron ``i`` spikes, ``delay`` seconds later. ``mask[i, j] = False`` removes
    that synapse (its weight must then be ignored; it is kept for shape).
    """

    source: Name
    target: Name
    weight: Annotated[np.ndarray, WeightSpec] = Field(description="[source.size, target.size] float array")
    mask: Annotated[np.ndarray, MaskSpec] | None = Field(default=None, description="optional bool connectivity")
    delay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0, description="transmission delay [s], >= 0"
    )
    name: Annotated[str, Field(pattern=r"^\S+$", max_length=200)] | None = Field(
        default=None, description="optional unique name; default key is 'source->target'"
    )

    @model_validator(mode="after")
    def _check(self) -> Edge:
        if self.mask is not None and self.mask.shape != self.weight.shape:
            raise PydanticCustomError(
                "mask_shape",
                "mask: shape {mshape} does not match weight shape {wshape}",
                {"mshape": list(self.mask.shape), "wshape": list(self.weight.shape)},
            )
        return self

    @property
    def n_synapses(self) -> int:
        """Number of synapses (mask entries that are set, or all of them)."""
        return int(self.mask.sum()) if self.mask is not None else int(self.weight.size)

    def effective_weight(self) -> np.ndarray:
        """The weight with masked-out synapses set to zero."""
        return self.weight if self.mask is None else np.where(self.mask, self.weight, 0).astype(self.weight.dtype)


class Network(_IRModel):
    """A spiking network: populations, projections between them, outputs, metadata.

    ``outputs`` names the populations whose activity is the network's result;
    when empty, every non-input population without projections to other
    populations is an output (see :meth:`output_names`).
    """

    ir_version: int = Field(default=IR_VERSION, description="IR schema version")
    name: Name
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    outputs: tuple[Name, ...] = ()
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("ir_version", mode="before")
    @classmethod
    def _check_version(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int) or v not in SUPPORTED_IR_VERSIONS:
            raise PydanticCustomError(
                "ir_version",
                "unsupported ir_version {v!r}: this snncomp reads ir_version {ok}",
                {"v": v, "ok": ", ".join(map(str, SUPPORTED_IR_VERSIONS))},
            )
        return v

    @model_validator(mode="after")
    def _check_graph(self) -> Network:
        problems = self.graph_problems()
        if problems:
            raise PydanticCustomError(
                "network_invalid",
                "network '{name}' has {n} problem(s):\n{lines}",
                {
                    "name": self.name,
                    "n": len(problems),
                    "lines": "\n".join(f"  - {p}" for p in problems),
                    "problems": problems,
                },
            )
        return self

    def graph_problems(self) -> list[str]:
        """Every graph-level problem, each as ``path: reason`` (empty when valid)."""
        problems: list[str] = []
        first_index: dict[str, int] = {}
        for i, node in enumerate(self.nodes):
            if node.name in first_index:
                problems.append(
                    f"nodes[{i}].name: duplicate node name '{node.name}' "
                    f"(first used by nodes[{first_index[node.name]}])"
                )
            else:
                first_index[node.name] = i
        by_name = {n.name: n for n in self.nodes}
        for j, edge in enumerate(self.edges):
            where = f"edges[{j}] ({edge.source}->{edge.target})"
            src, dst = by_name.get(edge.source), by_name.get(edge.target)
            if src is None:
                problems.append(f"{where}.source: no node named '{edge.source}'{_suggest(edge.source, by_name)}")
            if dst is None:
                problems.append(f"{where}.target: no node named '{edge.target}'{_suggest(edge.target, by_name)}")
            elif dst.kind == "input":
                problems.append(f"{where}.target: '{edge.target}' is an input node; projections cannot end at an input")
            if src is not None and dst is not None:
                want = (src.size, dst.size)
                if edge.weight.shape != want:
                    problems.append(
                        f"{where}.weight: expected shape [{want[0]}, {want[1]}] "
                        f"(source '{src.name}' size {src.size}, target '{dst.name}' size {dst.size}), "
                        f"got {list(edge.weight.shape)}"
                    )
        seen_keys: dict[str, int] = {}
        for j, edge in enumerate(self.edges):
            if edge.name is not None:
                if edge.name in seen_keys:
                    problems.append(
                        f"edges[{j}].name: duplicate edge name '{edge.name}' "
                        f"(first used by edges[{seen_keys[edge.name]}])"
                    )
                seen_keys.setdefault(edge.name, j)
        for k, out in enumerate(self.outputs):
            out_node = by_name.get(out)
            if out_node is None:
                problems.append(f"outputs[{k}]: no node named '{out}'{_suggest(out, by_name)}")
            elif out_node.kind == "input":
                problems.append(f"outputs[{k}]: '{out}' is an input node and cannot be an output")
        return problems

    # -- queries ------------------------------------------------------------
    def node(self, name: str) -> InputNode | LIFNode | LINode | IFNode:
        """The node called ``name`` (KeyError naming the known nodes otherwise)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}; nodes are {[n.name for n in self.nodes]}")

    def edge_keys(self) -> list[str]:
        """A unique key per edge: its name, or ``source->target`` (``#k`` for the k-th repeat)."""
        used: set[str] = {e.name for e in self.edges if e.name is not None}
        keys: list[str] = []
        for e in self.edges:
            if e.name is not None:
                keys.append(e.name)
                continue
            base = f"{e.source}->{e.target}"
            key, k = base, 1
            while key in used:
                key, k = f"{base}#{k}", k + 1
            used.add(key)
            keys.append(key)
        return keys

    def output_names(self) -> tuple[str, ...]:
        """The declared outputs, or every non-input node that feeds no other node."""
        if self.outputs:
            return self.outputs
        feeds = {e.source for e in self.edges if e.source != e.target}
        return tuple(n.name for n in self.nodes if n.kind != "input" and n.name not in feeds)

    def replace(self, **changes: Any) -> Network:
        """A validated copy with some fields changed (the IR itself is immutable)."""
        data = {f: getattr(self, f) for f in type(self).model_fields}
        data.update(changes)
        return type(self).model_validate(data)

    def __str__(self) -> str:
        from ._printer import format_network

        return format_network(self)

    def __repr__(self) -> str:
        return f"Network(name={self.name!r}, nodes={len(self.nodes)}, edges={len(self.edges)})"


def _suggest(name: str, known: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    if known:
        return f"; nodes are {sorted(known)}"
    return "; the network has no nodes"
