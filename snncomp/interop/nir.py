"""Read and write the Neuromorphic Intermediate Representation (NIR).

NIR (https://neuroir.org, PyPI ``nir``) is the exchange format of snnTorch,
Norse, Sinabs, Spyx, jaxsnn, Lava and others. This module maps NIR graphs to
the snncomp IR and back, following NIR's own equations (see ``docs/nir.md``
for every mapping and its derivation):

- ``CubaLIF`` and ``CubaLI`` become ``lif`` and ``li`` exactly. A NIR spike
  through weight ``W`` makes ``I`` jump by ``w_in * W / tau_syn`` and ``I``
  enters ``dv/dt`` multiplied by ``r``, so the snncomp weight is
  ``r * w_in * W / tau_syn`` (per target neuron).
- ``LIF``, ``LI`` and ``IF`` have no synaptic filter (an input spike moves
  ``v`` at once), which snncomp's models cannot express; they are imported as
  ``lif``/``li`` with a short synaptic time constant, an approximation that is
  documented, recorded in the network's metadata, and adjustable.
- ``Linear``, ``Affine`` (zero bias only), ``Scale`` and ``Delay`` nodes
  between neurons are composed into projections; nested ``NIRGraph``
  subgraphs are flattened into dotted names (``sub.lif1``).

What NIR cannot express (``t_refrac``, ``max_spikes``, masks, edge names, the
network's name, metadata and outputs) travels in namespaced ``snncomp.*``
metadata, so ``from_nir(to_nir(net)) == net`` exactly, also through a file.

The package ``nir`` is optional and imported only inside these functions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from ..errors import Diagnostic, SnnCompError
from ..ir import Edge, InputNode, LIFNode, LINode, Network
from ..ir._io import diagnostics_from_validation_error
from ..ir._models import NAME_PATTERN

if TYPE_CHECKING:  # pragma: no cover - for annotations only; nir stays optional
    import nir

__all__ = [
    "DEFAULT_TAU_SYN_RATIO",
    "REFRAC_PER_TAU_SYN",
    "SUPPORTED_TYPES",
    "TIME_UNITS",
    "NIRError",
    "NIRUnavailableError",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]

TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3}
"""Time units a NIR file may use, and their length in seconds."""

SUPPORTED_TYPES = (
    "Input",
    "Output",
    "CubaLIF",
    "LIF",
    "CubaLI",
    "LI",
    "IF",
    "Linear",
    "Affine",
    "Scale",
    "Delay",
    "NIRGraph",
)
"""The NIR node types :func:`from_nir` imports."""

DEFAULT_TAU_SYN_RATIO = 1e-4
"""Default ``tau_syn / tau`` for NIR nodes without a synaptic filter (``LIF``, ``LI``)."""

REFRAC_PER_TAU_SYN = 10.0
"""``t_refrac / tau_syn`` for spiking NIR nodes without a synaptic filter (``LIF``, ``IF``)."""

_INSTALL_HINT = 'pip install "snncomp[nir]"'

# Metadata keys written by to_nir. Values are JSON strings or numpy arrays, the two
# kinds that nir.write/nir.read keep exactly (numbers would come back as numpy scalars).
_MARK = "snncomp.network"  # graph: name, outputs, metadata, node/edge order, emitted keys
_NODE = "snncomp.node"  # neuron: which parameters are scalars, max_spikes, scalar t_refrac
_T_REFRAC = "snncomp.t_refrac"  # neuron: per-neuron t_refrac array
_EDGE = "snncomp.edge"  # Linear: the projection's name
_MASK = "snncomp.mask"  # Linear: the projection's bool mask, [source, target]
_MASKED = "snncomp.masked_values"  # Linear: weights hidden by the mask (NIR gets zeros there)
_FORMAT = 1

_NAME_RE = re.compile(NAME_PATTERN)

_NEURON_TYPES = {"CubaLIF": "lif", "LIF": "lif", "IF": "lif", "CubaLI": "li", "LI": "li"}
_ROLE_OF_TYPE = {
    **dict.fromkeys(_NEURON_TYPES, "neuron"),
    "Linear": "linear",
    "Affine": "linear",
    "Scale": "scale",
    "Delay": "delay",
}
# NIR parameters of each neuron type (for shape checks and size inference).
_NEURON_PARAMS = {
    "CubaLIF": ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_mem", "tau_syn", "r", "v_leak", "w_in"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "IF": ("r", "v_threshold", "v_reset"),
}
_LIF_FIELDS = ("tau_mem", "tau_syn", "v_threshold", "v_leak", "v_reset")
_LI_FIELDS = ("tau_mem", "tau_syn", "v_leak")


class NIRError(SnnCompError, ValueError):
    """A NIR graph cannot be imported, or a network cannot be exported; lists every problem."""

    def __init__(self, summary: str, problems: Iterable[Diagnostic] = ()):
        self.summary = summary
        self.diagnostics = list(problems)
        lines = [summary] + [f"  - {d}" for d in self.diagnostics]
        super().__init__("\n".join(lines))


class NIRUnavailableError(SnnCompError, ImportError):
    """The optional package ``nir`` is not installed."""


def _import_nir() -> Any:
    try:
        import nir
    except ImportError as exc:
        raise NIRUnavailableError(
            f"NIR support needs the optional package 'nir', which is not installed; install it with: {_INSTALL_HINT}"
        ) from exc
    return nir


# ---------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------


def to_nir(network: Network) -> nir.NIRGraph:
    """The NIR graph of ``network`` (time in seconds).

    Populations become ``Input``, ``CubaLIF`` (``lif``) and ``CubaLI`` (``li``)
    nodes with ``r = 1`` and ``w_in = tau_syn``, so that each projection's
    ``Linear`` weight is the snncomp weight, transposed to NIR's
    ``[target, source]``; a nonzero delay adds a ``Delay`` node after the
    ``Linear``; each output population feeds an ``Output`` node. Masked-out
    synapses are zero in the ``Linear``. Extras NIR cannot express travel in
    ``snncomp.*`` metadata, which NIR consumers ignore: ``t_refrac`` and
    ``max_spikes`` in particular have no NIR equivalent.
    """
    nir = _import_nir()
    if not isinstance(network, Network):
        raise NIRError(f"to_nir expects an snncomp.ir.Network, got {type(network).__name__}")
    used: set[str] = {n.name for n in network.nodes}
    sizes = {n.name: n.size for n in network.nodes}
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    for node in network.nodes:
        if node.kind == "input":
            nodes[node.name] = nir.Input(input_type={"input": np.array([node.size])})
        else:
            nodes[node.name] = _export_neuron(nir, node)

    linear_keys: list[str] = []
    extra_keys: list[str] = []
    for edge in network.edges:
        # Generated keys contain '>' or ':', which population names cannot, so they never clash;
        # the edge's own name (any non-space text, '/' included) would not be a safe HDF5 key.
        key = _unique(f"{edge.source}->{edge.target}", used)
        linear_keys.append(key)
        meta: dict[str, Any] = {_EDGE: json.dumps({"name": edge.name})}
        if edge.mask is not None:
            meta[_MASK] = np.array(edge.mask)
            hidden = ~edge.mask
            if hidden.any():
                meta[_MASKED] = np.array(edge.weight[hidden])
        weight = np.ascontiguousarray(edge.effective_weight().T)
        nodes[key] = nir.Linear(weight=weight, metadata=meta)
        edges.append((edge.source, key))
        if edge.delay != 0.0 or math.copysign(1.0, edge.delay) < 0:
            dkey = _unique(f"{key}:delay", used)
            extra_keys.append(dkey)
            nodes[dkey] = nir.Delay(delay=np.full(sizes[edge.target], edge.delay))
            edges += [(key, dkey), (dkey, edge.target)]
        else:
            edges.append((key, edge.target))

    for name in network.output_names():
        okey = _unique(f"{name}:output", used)
        extra_keys.append(okey)
        nodes[okey] = nir.Output(output_type={"output": np.array([sizes[name]])})
        edges.append((name, okey))

    mark = {
        "format": _FORMAT,
        "ir_version": network.ir_version,
        "name": network.name,
        "outputs": list(network.outputs),
        "metadata": network.metadata,
        "time_unit": "s",
        "nodes": [n.name for n in network.nodes],
        "edges": linear_keys,
        "keys": [n.name for n in network.nodes] + linear_keys + extra_keys,
    }
    # type_check=False: NIR's type inference would add Input/Output nodes to our graph in place.
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={_MARK: json.dumps(mark)}, type_check=False)


def _export_neuron(nir: Any, node: LIFNode | LINode) -> Any:
    n = node.size
    fields = _LIF_FIELDS if node.kind == "lif" else _LI_FIELDS
    blob: dict[str, Any] = {"kind": node.kind, "scalar": [f for f in fields if isinstance(getattr(node, f), float)]}
    meta: dict[str, Any] = {}

    def arr(f: str) -> np.ndarray:
        return _full(getattr(node, f), n)

    # w_in = tau_syn and r = 1 make the NIR current jump w_in * W / tau_syn equal W, so the
    # Linear carries our weight unchanged and the import's r * w_in / tau_syn is exactly 1.0.
    common = {"tau_mem": arr("tau_mem"), "tau_syn": arr("tau_syn"), "r": np.ones(n), "v_leak": arr("v_leak")}
    if node.kind == "li":
        meta[_NODE] = json.dumps(blob)
        return nir.CubaLI(**common, w_in=arr("tau_syn"), metadata=meta)
    blob["max_spikes"] = node.max_spikes
    if isinstance(node.t_refrac, float):
        blob["t_refrac"] = node.t_refrac
    else:
        blob["t_refrac"] = None
        meta[_T_REFRAC] = np.array(node.t_refrac)
    meta[_NODE] = json.dumps(blob)
    return nir.CubaLIF(
        **common,
        v_threshold=arr("v_threshold"),
        v_reset=arr("v_reset"),
        w_in=arr("tau_syn"),
        metadata=meta,
    )


def _full(value: float | np.ndarray, n: int) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return np.array(value)
    return np.full(n, value, dtype=np.float64)


def _unique(base: str, used: set[str]) -> str:
    key, k = base, 1
    while key in used:
        key, k = f"{base}#{k}", k + 1
    used.add(key)
    return key


# ---------------------------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------------------------


def from_nir(
    graph: nir.NIRGraph,
    *,
    time_unit: str = "s",
    name: str | None = None,
    tau_syn_ratio: float = DEFAULT_TAU_SYN_RATIO,
    if_tau: tuple[float, float] | None = None,
) -> Network:
    """The snncomp network of a NIR graph.

    ``time_unit`` is the unit of the graph's time constants and delays (``"s"``
    or ``"ms"``); NIR files do not record it. ``name`` names the network
    (default: the name stored by :func:`to_nir`, else ``"nir"``).

    NIR ``LIF`` and ``LI`` nodes have no synaptic filter; they are imported as
    ``lif``/``li`` with ``tau_syn = tau_syn_ratio * tau`` and weights chosen so
    that the membrane response to an input spike differs from NIR's only by
    ``-dv * exp(-t / tau_syn)``. ``IF`` nodes (no leak either) need
    ``if_tau=(tau_mem, tau_syn)`` in seconds. Each approximation is listed in
    the result's ``metadata["nir.approximations"]``; ``docs/nir.md`` bounds them.

    Raises :class:`NIRError` naming every node that cannot be imported (nothing
    is half-imported) and :class:`NIRUnavailableError` without the ``nir`` package.
    """
    nir = _import_nir()
    if not isinstance(time_unit, str) or time_unit not in TIME_UNITS:
        raise NIRError(
            f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}; NIR files do not record "
            "their time unit, so say which one the file's time constants and delays use"
        )
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"from_nir expects a nir.NIRGraph, got {type(graph).__name__}")
    if isinstance(tau_syn_ratio, bool) or not isinstance(tau_syn_ratio, (int, float)) or not 0 < tau_syn_ratio < 1:
        raise NIRError(f"tau_syn_ratio must be a number with 0 < tau_syn_ratio < 1, got {tau_syn_ratio!r}")
    if if_tau is not None:
        try:
            t_mem, t_syn = (float(t) for t in if_tau)
        except (TypeError, ValueError):
            raise NIRError(f"if_tau must be a pair (tau_mem, tau_syn) in seconds, got {if_tau!r}") from None
        if not (math.isfinite(t_mem) and 0 < t_syn < t_mem):
            raise NIRError(f"if_tau=(tau_mem, tau_syn) needs 0 < tau_syn < tau_mem (seconds), got {if_tau!r}")
        if_tau = (t_mem, t_syn)
    return _Importer(nir, graph, time_unit, name, float(tau_syn_ratio), if_tau).run()


def read_nir(
    path: str | Path,
    *,
    time_unit: str = "s",
    name: str | None = None,
    tau_syn_ratio: float = DEFAULT_TAU_SYN_RATIO,
    if_tau: tuple[float, float] | None = None,
) -> Network:
    """Read a NIR file (HDF5, as written by ``nir.write``) and import it with :func:`from_nir`.

    The network is named after the file unless the file was written by
    snncomp or ``name`` is given.
    """
    nir = _import_nir()
    p = Path(path)
    try:
        # type_check=False: NIR's type inference can reject graphs we import fine (cycles without
        # an Input edge) and adds Input/Output nodes in place; we infer sizes ourselves.
        graph = nir.read(p, type_check=False)
    except FileNotFoundError:
        raise NIRError(f"{p}: cannot read NIR file: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AssertionError, RuntimeError, AttributeError, IndexError) as exc:
        # A damaged file: h5py raises RuntimeError for some corrupted HDF5 structures, and nir's
        # parser AttributeError or IndexError where a group or array holds something else.
        raise NIRError(f"{p}: cannot read NIR file: {str(exc) or type(exc).__name__}") from None
    if name is None and _MARK not in (getattr(graph, "metadata", None) or {}):
        name = _sanitize(p.stem) or "nir"
    return from_nir(graph, time_unit=time_unit, name=name, tau_syn_ratio=tau_syn_ratio, if_tau=if_tau)


def write_nir(network: Network, path: str | Path) -> None:
    """Write ``network`` to a NIR file (HDF5) with :func:`to_nir` and ``nir.write``."""
    nir = _import_nir()
    graph = to_nir(network)
    try:
        nir.write(Path(path), graph)
    except OSError as exc:
        raise NIRError(f"{path}: cannot write NIR file: {exc}") from None


@dataclass
class _Leaf:
    """A NIR node after flattening subgraphs."""

    key: str  # flattened, dotted key
    node: Any
    type: str  # NIR type name
    role: str  # input | output | neuron | linear | scale | delay | pass | ignored | unsupported
    size_in: int | None = None
    size_out: int | None = None
    fallback: int | None = None  # size when only (1,)-shaped parameters and no neighbour tells
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"node '{self.key}' ({self.type})"

    @property
    def tied(self) -> bool:
        return self.role in ("neuron", "scale", "delay", "pass")


@dataclass
class _Chain:
    """The composed transfer from a source's spikes to the current point of a path."""

    matrix: np.ndarray | None  # [current, source]; None is the identity
    mixed: bool  # a Linear/Affine has been applied (channels are no longer the source's)
    src_delay: np.ndarray | None  # per source channel
    tgt_delay: np.ndarray | None  # per current channel
    fixed_delay: tuple[float, ...]  # uniform delays already folded in
    path: tuple[str, ...]  # keys of the non-identity transfer nodes passed


@dataclass
class _Pop:
    """An imported population: its IR node, and the factor NIR input gets on the way in."""

    leaf: _Leaf
    name: str
    node: Any
    in_scale: np.ndarray | None  # per target neuron; None for inputs
    scale_f32: bool  # all parameters behind in_scale are float32


class _Importer:
    def __init__(
        self,
        nir: Any,
        graph: Any,
        time_unit: str,
        name: str | None,
        ratio: float,
        if_tau: tuple[float, float] | None,
    ):
        self.nir = nir
        self.graph = graph
        self.time_unit = time_unit
        self.unit = TIME_UNITS[time_unit]
        self.name = name
        self.ratio = ratio
        self.if_tau = if_tau
        self.problems: list[Diagnostic] = []
        self.notes: list[str] = []
        self.approximations: list[str] = []
        self.leaves: dict[str, _Leaf] = {}
        self.subgraphs: dict[str, tuple[list[str], list[str]]] = {}
        self.edges: list[tuple[str, str]] = []
        self.mark: dict[str, Any] | None = None
        # Filled by trace_paths.
        self._pops: dict[str, _Pop] = {}
        self._out_edges: dict[str, list[str]] = {}
        self._edge_order: dict[str, int] = {}
        self._edges: list[tuple[float, Edge]] = []
        self._edge_names: set[str] = set()
        self._outputs: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(Diagnostic(where, message))

    def fail_if_problems(self) -> None:
        if self.problems:
            raise NIRError(f"cannot import NIR graph ({len(self.problems)} problem(s))", self.problems)

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> Network:
        self.read_mark()
        self.flatten(self.graph, "", top=True)
        self.fail_if_problems()
        self.ignore_inserted_nodes()
        self.infer_sizes()
        self.fail_if_problems()
        names = self.assign_names()
        pops = self.convert_populations(names)
        edges, outputs = self.trace_paths(pops)
        self.fail_if_problems()
        return self.build(pops, edges, outputs)

    # -- snncomp's own metadata --------------------------------------------------------------
    def read_mark(self) -> None:
        meta = getattr(self.graph, "metadata", None)
        raw = meta.get(_MARK) if isinstance(meta, dict) else None
        if raw is None:
            return
        mark = _json(raw)
        if not isinstance(mark, dict) or mark.get("format") != _FORMAT:
            self.problem("graph metadata", f"'{_MARK}' is not snncomp NIR metadata of format {_FORMAT}")
            return
        self.mark = mark
        if mark.get("time_unit", "s") != self.time_unit:
            self.problem(
                "graph metadata",
                f"this graph was written by snncomp with times in {mark.get('time_unit')!r}; "
                f"import it with time_unit={mark.get('time_unit')!r}, not {self.time_unit!r}",
            )

    # -- structure ---------------------------------------------------------------------------
    def flatten(self, graph: Any, prefix: str, *, top: bool) -> tuple[list[str], list[str]]:
        """Collect the leaves of ``graph`` under ``prefix``; returns its Input and Output keys."""
        ins: list[str] = []
        outs: list[str] = []
        nodes = getattr(graph, "nodes", None)
        if not isinstance(nodes, dict):
            self.problem(f"subgraph '{prefix[:-1]}'" if prefix else "graph", "has no 'nodes' dictionary")
            return ins, outs
        for raw_key, node in nodes.items():
            flat = prefix + _text(raw_key)
            if flat in self.leaves or flat in self.subgraphs:
                self.problem(f"node '{flat}'", "two nodes have this name once subgraphs are flattened")
                continue
            if isinstance(node, self.nir.NIRGraph):
                self.subgraphs[flat] = self.flatten(node, flat + ".", top=False)
                continue
            tname = type(node).__name__
            if tname == "Input":
                role = "input" if top else "pass"
                ins.append(flat)
            elif tname == "Output":
                role = "output" if top else "pass"
                outs.append(flat)
            else:
                role = _ROLE_OF_TYPE.get(tname, "unsupported")
            leaf = _Leaf(flat, node, tname, role, meta=_metadata(node))
            self.leaves[flat] = leaf
            self.check_leaf(leaf)
        raw_edges = getattr(graph, "edges", None)
        for edge in [] if raw_edges is None else raw_edges:
            try:
                a, b = (_text(x) for x in edge)
            except (TypeError, ValueError):
                self.problem(f"edge {edge!r}" + (f" in subgraph '{prefix[:-1]}'" if prefix else ""), "not a pair")
                continue
            desc = f"edge ({prefix + a!r} -> {prefix + b!r})"
            for s in self.resolve(prefix, a, source=True, desc=desc):
                for d in self.resolve(prefix, b, source=False, desc=desc):
                    self.edges.append((s, d))
        return ins, outs

    def resolve(self, prefix: str, ref: str, *, source: bool, desc: str) -> list[str]:
        full = prefix + ref
        if full in self.leaves:
            return [full]
        if full in self.subgraphs:
            ins, outs = self.subgraphs[full]
            ends = outs if source else ins
            if not ends:
                kind = "Output" if source else "Input"
                self.problem(desc, f"subgraph '{full}' has no {kind} node to connect {'from' if source else 'to'}")
            return ends
        self.problem(desc, f"no node named '{full}'")
        return []

    def check_leaf(self, leaf: _Leaf) -> None:
        """Per-node checks that need no neighbours: type, bias, parameter shapes."""
        node = leaf.node
        if leaf.role == "unsupported":
            self.problem(
                leaf.where,
                f"NIR type {leaf.type} is not supported by snncomp; supported types: {', '.join(SUPPORTED_TYPES)}",
            )
            return
        if leaf.type in ("Linear", "Affine"):
            w = _numeric(getattr(node, "weight", None))
            if w is None or w.ndim != 2:
                shape = None if w is None else list(w.shape)
                self.problem(leaf.where, f"weight must be a 2-D numeric array [out, in], got shape {shape}")
                return
            leaf.size_in, leaf.size_out = int(w.shape[1]), int(w.shape[0])
            if leaf.type == "Affine":
                bias = _numeric(getattr(node, "bias", None))
                if bias is None:
                    self.problem(leaf.where, "bias is not a numeric array")
                elif np.any(bias != 0):
                    self.problem(
                        leaf.where,
                        "has a nonzero bias (a constant input current), which snncomp's neuron models do not "
                        "have; biases are unsupported (a bias is usually given as a constant input channel "
                        "instead, as in the Yin-Yang task)",
                    )
        elif leaf.role == "neuron":
            if leaf.type == "IF" and self.if_tau is None:
                self.problem(
                    leaf.where,
                    "NIR's IF neuron has neither leak nor synaptic filter, which snncomp's lif cannot express "
                    "exactly; pass if_tau=(tau_mem, tau_syn) in seconds (CLI: --if-tau TAU_MEM TAU_SYN), e.g. "
                    "(10.0, 1e-5), to import it as a lif with that slow leak and fast synapse",
                )
            self.param_sizes(leaf, _NEURON_PARAMS[leaf.type])
        elif leaf.role in ("scale", "delay"):
            self.param_sizes(leaf, ("scale",) if leaf.role == "scale" else ("delay",))
            if leaf.role == "delay":
                d = _numeric(getattr(node, "delay", None))
                if d is not None and (not np.all(np.isfinite(d)) or np.any(d < 0)):
                    self.problem(leaf.where, "delay must be finite and >= 0")
        elif leaf.role in ("input", "output", "pass"):
            attr, port = ("input_type", "input") if leaf.type == "Input" else ("output_type", "output")
            types = getattr(node, attr, None)
            shape = types.get(port) if isinstance(types, dict) else None
            if shape is not None:
                dims = _numeric(shape)
                if dims is None or dims.ndim > 1 or not np.all((dims >= 1) & (dims == np.floor(dims))):
                    self.problem(leaf.where, f"shape {shape!r} is not a list of positive sizes")
                else:
                    size = int(np.prod(dims))
                    leaf.size_in = leaf.size_out = size
            elif leaf.role == "input":
                self.problem(leaf.where, "Input node has no shape")

    def param_sizes(self, leaf: _Leaf, params: tuple[str, ...]) -> None:
        sizes: set[int] = set()
        for p in params:
            value = getattr(leaf.node, p, None)
            if value is None and p in ("v_reset", "w_in"):
                continue  # NIR defaults: v_reset = 0, w_in = 1
            arr = _numeric(value)
            if arr is None:
                self.problem(leaf.where, f"parameter {p} is missing or not numeric")
            elif arr.ndim > 1:
                self.problem(leaf.where, f"parameter {p} has shape {list(arr.shape)}; expected a scalar or 1-D array")
            elif arr.ndim == 1 and arr.shape[0] > 1:
                sizes.add(int(arr.shape[0]))
            elif arr.ndim == 1 and arr.shape[0] == 1:
                leaf.fallback = 1
            elif arr.ndim == 1:
                self.problem(leaf.where, f"parameter {p} is empty")
        if len(sizes) > 1:
            self.problem(leaf.where, f"parameters have different lengths {sorted(sizes)}")
        elif sizes:
            leaf.size_in = leaf.size_out = sizes.pop()

    def ignore_inserted_nodes(self) -> None:
        """Drop graph-level Input/Output nodes that NIR's type inference added to a graph we wrote."""
        if self.mark is None:
            return
        ours = set(self.mark.get("keys", []))
        for leaf in self.leaves.values():
            if leaf.role in ("input", "output") and leaf.key not in ours:
                leaf.role = "ignored"

    def infer_sizes(self) -> None:
        """Propagate sizes along edges (NIR edges are identities: sizes must agree)."""
        live = [(s, d) for s, d in self.edges if "ignored" not in (self.leaves[s].role, self.leaves[d].role)]
        for fallback_round in (False, True):
            changed = True
            while changed:
                changed = False
                for leaf in self.leaves.values():
                    if leaf.tied and (leaf.size_in is None) != (leaf.size_out is None):
                        leaf.size_in = leaf.size_out = leaf.size_in or leaf.size_out
                        changed = True
                for s, d in live:
                    src, dst = self.leaves[s], self.leaves[d]
                    if src.size_out is None and dst.size_in is not None:
                        src.size_out, changed = dst.size_in, True
                    elif dst.size_in is None and src.size_out is not None:
                        dst.size_in, changed = src.size_out, True
            if fallback_round:
                break
            for leaf in self.leaves.values():
                if leaf.tied and leaf.size_in is None and leaf.fallback is not None:
                    leaf.size_in = leaf.size_out = leaf.fallback
        for s, d in live:
            src, dst = self.leaves[s], self.leaves[d]
            if dst.role == "input":
                self.problem(f"edge ('{s}' -> '{d}')", f"'{d}' is a graph Input and cannot receive")
            elif src.role == "output":
                self.problem(f"edge ('{s}' -> '{d}')", f"'{s}' is a graph Output and cannot send")
            elif src.size_out is not None and dst.size_in is not None and src.size_out != dst.size_in:
                hint = ""
                if src.role in ("neuron", "input") and dst.role == "neuron":
                    hint = "; an edge without a weight node is an identity projection, which needs equal sizes"
                self.problem(
                    f"edge ('{s}' -> '{d}')",
                    f"size mismatch: {src.where} gives {src.size_out} values but {dst.where} takes {dst.size_in}{hint}",
                )
        for leaf in self.leaves.values():
            if leaf.tied and leaf.size_in != leaf.size_out:
                self.problem(leaf.where, f"its input size {leaf.size_in} differs from its output size {leaf.size_out}")
            if leaf.role == "neuron" and leaf.size_in is None:
                self.problem(
                    leaf.where,
                    "cannot tell how many neurons it has: its parameters are scalars and no weight node, Input "
                    "or Output with a shape connects to it",
                )

    # -- populations ---------------------------------------------------------------------------
    def assign_names(self) -> dict[str, str]:
        """IR names for graph inputs and neuron nodes, in the order the network lists them."""
        keys = [leaf.key for leaf in self.leaves.values() if leaf.role in ("input", "neuron")]
        if self.mark is not None:
            order = {k: i for i, k in enumerate(self.mark.get("nodes", []))}
            keys.sort(key=lambda k: order.get(k, len(order)))  # stable: foreign additions keep graph order
        names: dict[str, str] = {}
        taken: set[str] = set()
        renamed: dict[str, str] = {}
        for key in keys:
            ok = _NAME_RE.match(key) is not None and len(key) <= 200
            base = key if ok else (_sanitize(key) or "node")
            name = _unique(base, taken) if base in taken else base
            taken.add(name)
            names[key] = name
            if name != key:
                renamed[name] = key
        if renamed:
            self.notes.append(
                "renamed nodes whose NIR names are not valid IR names: "
                + ", ".join(f"'{k}' -> '{v}'" for v, k in renamed.items())
            )
        return names

    def convert_populations(self, names: dict[str, str]) -> dict[str, _Pop]:
        pops: dict[str, _Pop] = {}
        for key, name in names.items():
            leaf = self.leaves[key]
            if leaf.role == "input":
                pops[key] = _Pop(leaf, name, InputNode(name=name, size=leaf.size_out), None, False)
                continue
            pop = self.convert_neuron(leaf, name)
            if pop is not None:
                pops[key] = pop
        return pops

    def convert_neuron(self, leaf: _Leaf, name: str) -> _Pop | None:
        node, n, t = leaf.node, leaf.size_in, leaf.type
        blob = _json(leaf.meta.get(_NODE)) if _NODE in leaf.meta else None
        scalars = set(blob.get("scalar", [])) if isinstance(blob, dict) else None

        def raw(p: str, default: float | None = None) -> np.ndarray:
            value = getattr(node, p, None)
            return _numeric(default if value is None else value)

        def param(arr: np.ndarray, field_name: str, *, time: bool = False) -> float | np.ndarray:
            return _param(arr, n, scalars, field_name, self.unit if time else 1.0)

        # Zero or negative time constants are reported by the IR's validation below, by name.
        with np.errstate(divide="ignore", invalid="ignore"):
            in_scale, deps = self.input_factor(leaf, n)
        params: dict[str, Any] = {}
        if t in ("CubaLIF", "CubaLI"):
            params["tau_mem"] = param(raw("tau_mem"), "tau_mem", time=True)
            params["tau_syn"] = param(raw("tau_syn"), "tau_syn", time=True)
            params["v_leak"] = param(raw("v_leak"), "v_leak")
        elif t in ("LIF", "LI"):
            rho = self.ratio
            params["tau_mem"] = param(raw("tau"), "tau_mem", time=True)
            params["tau_syn"] = _scaled(params["tau_mem"], rho)
            params["v_leak"] = param(raw("v_leak"), "v_leak")
            what = f"tau_syn = {rho:g} * tau and weights scaled so v matches NIR's once exp(-t/tau_syn) has decayed"
            if t == "LIF":
                # NIR's reset drops the part of the jump above threshold; ours would keep integrating the
                # current still flowing. Holding v for a few tau_syn lets that current decay instead.
                params["t_refrac"] = _scaled(params["tau_syn"], REFRAC_PER_TAU_SYN)
                what += f", t_refrac = {REFRAC_PER_TAU_SYN:g} * tau_syn"
            self.approximations.append(
                f"{leaf.where}: NIR {t} has no synaptic filter; imported as {_NEURON_TYPES[t]} with {what}"
            )
        else:  # IF
            if self.if_tau is None:  # reported by check_leaf
                return None
            t_mem, t_syn = self.if_tau
            params |= {"tau_mem": t_mem, "tau_syn": t_syn, "v_leak": 0.0, "t_refrac": REFRAC_PER_TAU_SYN * t_syn}
            self.approximations.append(
                f"{leaf.where}: NIR IF has no leak and no synaptic filter; imported as lif with "
                f"tau_mem = {t_mem:g} s, tau_syn = {t_syn:g} s (if_tau), t_refrac = {REFRAC_PER_TAU_SYN:g} * tau_syn"
            )
        if _NEURON_TYPES[t] == "lif":
            params["v_threshold"] = param(raw("v_threshold"), "v_threshold")
            params["v_reset"] = param(raw("v_reset", 0.0), "v_reset")
            if isinstance(blob, dict):
                params["max_spikes"] = blob.get("max_spikes")
                if blob.get("t_refrac") is not None:
                    params["t_refrac"] = blob["t_refrac"]
                elif _T_REFRAC in leaf.meta:
                    params["t_refrac"] = leaf.meta[_T_REFRAC]
        model = LIFNode if _NEURON_TYPES[t] == "lif" else LINode
        try:
            ir_node = model(name=name, size=n, **params)
        except ValidationError as exc:
            reasons = "; ".join(d.message for d in diagnostics_from_validation_error(exc, params))
            kind = _NEURON_TYPES[t]
            self.problem(leaf.where, f"does not make a valid {kind} population: {reasons}")
            return None
        if not np.all(np.isfinite(in_scale)):
            self.problem(leaf.where, "r, w_in and tau give a non-finite input factor")
            return None
        return _Pop(leaf, name, ir_node, in_scale, all(d.dtype == np.float32 for d in deps))

    def input_factor(self, leaf: _Leaf, n: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Per target neuron: the IR weight per unit of NIR weight, and the arrays it depends on.

        The unit of time cancels: ``r * w_in * W`` and ``tau`` share it (see docs/nir.md).
        """
        node = leaf.node
        r = _numeric(node.r)
        if leaf.type in ("CubaLIF", "CubaLI"):
            # tau_syn dI/dt = -I + w_in S with Dirac S of area W: I jumps by w_in W / tau_syn, and
            # r I drives v, so the IR weight (the jump of the current that drives v) is r w_in W / tau_syn.
            w_in = _numeric(1.0 if node.w_in is None else node.w_in)
            tau_syn = _numeric(node.tau_syn)
            return _f64(r, n) * _f64(w_in, n) / _f64(tau_syn, n), (r, w_in, tau_syn)
        if leaf.type in ("LIF", "LI"):
            # No synaptic filter: a spike moves v by dv = r W / tau at once. With tau_syn = rho tau and
            # weight dv (1 - rho) / rho the IR's v is v_NIR - dv exp(-t / tau_syn) (exact for li).
            rho, tau = self.ratio, _numeric(node.tau)
            return _f64(r, n) * (1.0 - rho) / (rho * _f64(tau, n)), (r, tau)
        # IF: dv/dt = r I, a spike moves v by r W; if_tau gives the leak and the synapse.
        t_mem, t_syn = self.if_tau or (np.nan, np.nan)
        return _f64(r, n) * (t_mem - t_syn) / t_syn, (r,)

    # -- projections ---------------------------------------------------------------------------
    def trace_paths(self, pops: dict[str, _Pop]) -> tuple[list[tuple[float, Edge]], list[str]]:
        """Follow every path from an Input or neuron through weight nodes to a neuron or Output."""
        out_edges: dict[str, list[str]] = {k: [] for k in self.leaves}
        for s, d in self.edges:
            out_edges[s].append(d)
        edge_order = {k: i for i, k in enumerate(self.mark.get("edges", []))} if self.mark else {}
        self._out_edges = out_edges
        self._pops = pops
        self._edge_order = edge_order
        for key, pop in pops.items():
            n = pop.leaf.size_out
            start = _Chain(None, False, None, None, (), ())
            if pop.node.kind == "li":
                bad = [d for d in out_edges[key] if self.leaves[d].role not in ("output", "ignored")]
                if bad:
                    self.problem(
                        pop.leaf.where,
                        f"feeds {', '.join(repr(b) for b in bad)}, but a leaky integrator's output is its voltage, "
                        "which snncomp cannot send through a projection; li populations are readouts",
                    )
                    continue
            self.walk(key, key, start, (key,), n)
        return self._edges, self._outputs

    def walk(self, src: str, cur: str, chain: _Chain, visiting: tuple[str, ...], n_src: int) -> None:
        for dst in self._out_edges[cur]:
            leaf = self.leaves[dst]
            if leaf.role in ("ignored", "input"):
                continue  # an edge into a graph Input was reported by infer_sizes
            if leaf.role == "neuron":
                if dst in self._pops:
                    self.emit(src, dst, chain, n_src)
            elif leaf.role == "output":
                self.mark_output(src, leaf, chain)
            else:
                if dst in visiting:
                    loop = " -> ".join([*visiting[visiting.index(dst) :], dst])
                    self.problem(leaf.where, f"is on a loop of weight nodes without a neuron ({loop})")
                    continue
                nxt = self.apply(chain, leaf)
                if nxt is None:
                    continue
                if not self._out_edges[dst]:
                    self.notes.append(f"{leaf.where} feeds nothing; ignored")
                self.walk(src, dst, nxt, (*visiting, dst), n_src)

    def apply(self, chain: _Chain, leaf: _Leaf) -> _Chain | None:
        node, role = leaf.node, leaf.role
        if role == "pass":
            return chain
        cur = leaf.size_in
        if role == "linear":
            w = _numeric(node.weight)
            fixed, tgt = chain.fixed_delay, chain.tgt_delay
            if tgt is not None:
                if not np.all(tgt == tgt[0]):
                    self.problem(
                        leaf.where,
                        "follows a Delay with different delays per channel after another weight node; a "
                        "projection has one delay per synapse only when per-channel delays sit next to neurons",
                    )
                    return None
                fixed, tgt = (*fixed, float(tgt[0])), None
            if chain.matrix is None:
                matrix = w  # kept as is, so weights keep their dtype and bits
            else:
                matrix = w.astype(np.float64) @ chain.matrix.astype(np.float64)
            return _Chain(matrix, True, chain.src_delay, tgt, fixed, (*chain.path, leaf.key))
        if role == "scale":
            s = _f64(_numeric(node.scale), cur)
            base = np.eye(cur) if chain.matrix is None else chain.matrix.astype(np.float64)
            path = (*chain.path, leaf.key)
            return _Chain(s[:, None] * base, chain.mixed, chain.src_delay, chain.tgt_delay, chain.fixed_delay, path)
        # delay: in file units; delays before the first weight node belong to the source's channels
        d = _numeric(node.delay)
        d = np.broadcast_to(d.reshape(-1) if d.ndim else d, (cur,)).astype(np.float64)
        if self.unit != 1.0:
            d = d * self.unit
        if not chain.mixed:
            src = d if chain.src_delay is None else chain.src_delay + d
            return _Chain(chain.matrix, False, src, chain.tgt_delay, chain.fixed_delay, (*chain.path, leaf.key))
        tgt = d if chain.tgt_delay is None else chain.tgt_delay + d
        return _Chain(chain.matrix, True, chain.src_delay, tgt, chain.fixed_delay, (*chain.path, leaf.key))

    def mark_output(self, src: str, out: _Leaf, chain: _Chain) -> None:
        pop = self._pops[src]
        if chain.path:
            via = self.leaves[chain.path[-1]]
            self.problem(
                out.where,
                f"receives from {via.where}; snncomp outputs are populations (their spikes, or an li's "
                "voltage), so only a neuron node (or a subgraph ending in one) can feed an Output",
            )
        elif pop.node.kind == "input":
            self.notes.append(f"{out.where} is fed directly by Input '{src}'; an input cannot be an output, dropped")
        elif pop.name not in self._outputs:
            self._outputs.append(pop.name)

    def emit(self, src: str, dst: str, chain: _Chain, n_src: int) -> None:
        source, target = self._pops[src], self._pops[dst]
        n_tgt = target.leaf.size_in
        matrix = np.eye(n_src) if chain.matrix is None else chain.matrix
        w_dtype = np.float32 if matrix.dtype == np.float32 else np.float64
        scale = target.in_scale
        if chain.matrix is not None and np.all(scale == 1.0):
            weight = matrix.astype(w_dtype, copy=False)
        else:
            # Computed in float64 and rounded once; float32 models stay float32.
            if not (w_dtype == np.float32 and target.scale_f32):
                w_dtype = np.float64
            weight = (matrix.astype(np.float64) * scale[:, None]).astype(w_dtype)
        weight = np.ascontiguousarray(weight.T)  # NIR is [target, source]; the IR is [source, target]

        delays = self.delays(chain, n_src, n_tgt)
        linear = next((k for k in chain.path if self.leaves[k].role == "linear"), None)
        ours = self.leaves[linear].meta if linear is not None and _EDGE in self.leaves[linear].meta else None
        base_name = None if not chain.path else re.sub(r"\s", "_", "+".join(chain.path))[:180]
        order = float(self._edge_order.get(linear, len(self._edge_order))) if linear else float(len(self._edge_order))
        groups = [(delays, None)] if isinstance(delays, float) else _delay_groups(delays)
        for k, (delay, mask) in enumerate(groups):
            edge_mask = mask
            w = weight
            if ours is not None and len(groups) == 1:
                blob = _json(ours[_EDGE])
                ename = blob.get("name") if isinstance(blob, dict) else None
                if _MASK in ours:
                    edge_mask = np.asarray(ours[_MASK], dtype=bool)
                    if edge_mask.shape != weight.shape:
                        self.problem(
                            self.leaves[linear].where,
                            f"metadata '{_MASK}' has shape {list(edge_mask.shape)} but the projection is "
                            f"{list(weight.shape)}",
                        )
                        return
                    if _MASKED in ours:
                        hidden = np.asarray(ours[_MASKED])
                        if hidden.shape != ((~edge_mask).sum(),):
                            self.problem(self.leaves[linear].where, f"metadata '{_MASKED}' does not fit the mask")
                            return
                        w = weight.copy()
                        w[~edge_mask] = hidden.astype(w.dtype)
            else:
                ename = None if base_name is None else (base_name if len(groups) == 1 else f"{base_name}@{k}")
                if ename is not None:
                    ename = _unique(ename, self._edge_names) if ename in self._edge_names else ename
            if ename is not None:
                self._edge_names.add(ename)
            try:
                edge = Edge(source=source.name, target=target.name, weight=w, mask=edge_mask, delay=delay, name=ename)
            except ValidationError as exc:
                reasons = "; ".join(str(d) for d in diagnostics_from_validation_error(exc, {}))
                path = " -> ".join((src, *chain.path, dst))
                self.problem(f"path {path}", f"does not make a valid projection: {reasons}")
                return
            self._edges.append((order, edge))

    @staticmethod
    def delays(chain: _Chain, n_src: int, n_tgt: int) -> float | np.ndarray:
        """The path's delay: one number, or a [source, target] matrix when channels differ."""
        parts: list[Any] = list(chain.fixed_delay)
        if chain.src_delay is not None:
            parts.append(chain.src_delay[:, None])
        if chain.tgt_delay is not None:
            parts.append(chain.tgt_delay[None, :])
        if not parts:
            return 0.0
        # Summed without a 0.0 start, so a single delay keeps its exact value (and sign of zero).
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        if np.ndim(total) == 0:
            return float(total)
        full = np.broadcast_to(total, (n_src, n_tgt))
        if np.all(full == full.flat[0]):
            return float(full.flat[0])
        return np.array(full)

    # -- result --------------------------------------------------------------------------------
    def build(self, pops: dict[str, _Pop], edges: list[tuple[float, Edge]], outputs: list[str]) -> Network:
        nodes = tuple(p.node for p in pops.values())
        ordered = tuple(e for _, e in sorted(edges, key=lambda x: x[0]))  # stable: ties keep path order
        if self.mark is not None:
            present = {p.name for p in pops.values()}
            name = self.name or self.mark.get("name", "nir")
            outs = tuple(o for o in self.mark.get("outputs", []) if o in present)
            metadata = self.mark.get("metadata", {})
        else:
            name = self.name or "nir"
            outs = tuple(outputs)
            metadata = {"nir.time_unit": self.time_unit}
        if self.approximations:
            metadata = {**metadata, "nir.approximations": list(self.approximations)}
        if self.notes:
            metadata = {**metadata, "nir.notes": list(self.notes)}
        try:
            return Network(name=name, nodes=nodes, edges=ordered, outputs=outs, metadata=metadata)
        except ValidationError as exc:
            raise NIRError("the imported network is invalid", diagnostics_from_validation_error(exc, {})) from None


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _text(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def _json(raw: Any) -> Any:
    try:
        return json.loads(_text(raw))
    except (TypeError, ValueError):
        return None


def _metadata(node: Any) -> dict[str, Any]:
    meta = getattr(node, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as a numeric numpy array (torch/jax arrays included), or None."""
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        return None
    return arr


def _f64(arr: np.ndarray, n: int) -> np.ndarray:
    """A parameter broadcast to ``n`` neurons, in float64."""
    return np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (n,)).astype(np.float64)


def _param(arr: np.ndarray, n: int, scalars: set[str] | None, field_name: str, unit: float) -> float | np.ndarray:
    """A NIR parameter as an IR parameter: a scalar, or a per-neuron array keeping float32/float64.

    Graphs written by snncomp say which parameters were scalars; otherwise a
    parameter whose values are all equal becomes a scalar.
    """
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    flat = arr.astype(dtype, copy=False).reshape(-1)
    if unit != 1.0:  # skipped for seconds, so values stay bit-exact
        flat = flat * unit
    if scalars is not None:
        # Trust the metadata only while it still fits (another tool may have edited the values).
        scalar = field_name in scalars and bool(np.all(flat == flat[0]))
    else:
        scalar = bool(flat.size == 1 or np.all(flat == flat[0]))
    if scalar:
        return float(flat[0])
    return np.array(np.broadcast_to(flat, (n,)))


def _scaled(value: float | np.ndarray, factor: float) -> float | np.ndarray:
    return value * factor if isinstance(value, float) else (value.astype(np.float64) * factor).astype(value.dtype)


def _delay_groups(delays: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Split a per-synapse delay matrix into (delay, mask) pairs, one projection each."""
    return [(float(d), delays == d) for d in np.unique(delays)]


def _sanitize(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:200]
    if out and not re.match(r"[A-Za-z0-9_]", out[0]):
        out = "_" + out[:199]
    return out
