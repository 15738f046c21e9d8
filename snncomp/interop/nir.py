"""Read and write the Neuromorphic Intermediate Representation (NIR).

NIR (https://neuroir.org, PyPI ``nir``) is the exchange format of snnTorch,
Norse, Sinabs, Spyx, Rockpool, jaxsnn, Lava and others. This module maps NIR
graphs to the snncomp IR and back, following NIR's own equations (see
``docs/nir.md`` for every mapping and its derivation):

- ``CubaLIF`` and ``CubaLI`` become ``lif`` and ``li`` exactly. A NIR spike
  through weight ``W`` makes ``I`` jump by ``w_in * W / tau_syn`` and ``I``
  enters ``dv/dt`` multiplied by ``r``, so the snncomp weight is
  ``r * w_in * W / tau_syn`` (per target neuron).
- ``LIF`` and ``LI`` (no synaptic filter) become ``lif``/``li`` with
  ``tau_syn = 0`` (instantaneous synapses), ``IF`` becomes ``if``, all exactly:
  a spike moves ``v`` by ``r * W / tau`` (``IF``: ``r * W``).
- ``Linear``, ``Affine``, ``Scale`` and ``Delay`` nodes between neurons are
  composed into projections; an ``Affine`` bias becomes the target
  population's ``bias`` (times ``r`` and ``w_in``); nested ``NIRGraph``
  subgraphs are flattened into dotted names (``sub.lif1``).
- ``convention=`` undoes what a given exporter (snnTorch, Spyx, Rockpool,
  Norse, Sinabs) writes differently from NIR's equations: discrete time
  steps, the one-step pulse reading of a spike, their ``r``/``w_in`` choices.

What NIR cannot express (``t_refrac``, ``max_spikes``, masks, edge names, the
network's name, metadata and outputs) travels in namespaced ``snncomp.*``
metadata, so ``from_nir(to_nir(net)) == net`` exactly, also through a file.

The package ``nir`` is optional and imported only inside these functions.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from pydantic import ValidationError

from ..errors import Diagnostic, SnnCompError
from ..ir import Edge, IFNode, InputNode, LIFNode, LINode, Network
from ..ir._io import diagnostics_from_validation_error
from ..ir._models import NAME_PATTERN

if TYPE_CHECKING:  # pragma: no cover - for annotations only; nir stays optional
    import nir

__all__ = [
    "CONVENTIONS",
    "DEFAULT_DT",
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

CONVENTIONS = ("nir", "snntorch", "spyx", "rockpool", "norse", "sinabs")
"""How :func:`from_nir` reads a graph: ``"nir"`` follows NIR's equations literally; the others undo
what that library's exporter writes differently (see ``docs/nir.md``, "Exporter conventions")."""

DEFAULT_DT: dict[str, float | None] = {
    "nir": None,
    "snntorch": 1e-4,  # hard-coded in snntorch.export_nir
    "spyx": 1.0,  # spyx.nir.to_nir(..., dt=1): time constants counted in steps
    "rockpool": None,  # recovered from r = tau exp(-dt / tau) / dt
    "norse": 1e-3,  # norse.torch.to_nir(..., dt=0.001)
    "sinabs": 1e-3,  # Sinabs counts time in steps; this is the step's length in seconds
}
"""Time step [s] each convention assumes when ``dt`` is not given (``None``: not needed, or recovered)."""

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

_NEURON_TYPES = {"CubaLIF": "lif", "LIF": "lif", "IF": "if", "CubaLI": "li", "LI": "li"}
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
_LIF_FIELDS = ("tau_mem", "tau_syn", "v_threshold", "v_leak", "v_reset", "bias")
_LI_FIELDS = ("tau_mem", "tau_syn", "v_leak", "bias")
_IF_FIELDS = ("v_threshold", "v_reset", "bias")
_BIAS = "snncomp.bias"  # neuron: the exact per-neuron IR bias (the Affine's b is rounded by the division)
_MODELS = {"lif": LIFNode, "li": LINode, "if": IFNode}


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
    nodes with ``r = 1`` and ``w_in = tau_syn``, ``LIF``/``LI`` (``tau_syn = 0``)
    with ``r = tau``, and ``IF`` (``if``) with ``r = 1``, so that each
    projection's ``Linear`` weight is the snncomp weight, transposed to NIR's
    ``[target, source]``; a nonzero delay adds a ``Delay`` node after the
    ``Linear``; each output population feeds an ``Output`` node. Masked-out
    synapses are zero in the ``Linear``. A population's ``bias`` becomes the
    bias of an ``Affine``: the first projection into it, or a node
    ``<name>:bias`` (zero weights from no input) when nothing projects into it.
    Extras NIR cannot express travel in ``snncomp.*`` metadata, which NIR
    consumers ignore: ``t_refrac`` and ``max_spikes`` in particular have no
    NIR equivalent.
    """
    nir = _import_nir()
    if not isinstance(network, Network):
        raise NIRError(f"to_nir expects an snncomp.ir.Network, got {type(network).__name__}")
    used: set[str] = {n.name for n in network.nodes}
    sizes = {n.name: n.size for n in network.nodes}
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    biases: dict[str, np.ndarray] = {}  # target -> the Affine bias b that gives its IR bias
    for node in network.nodes:
        if node.kind == "input":
            nodes[node.name] = nir.Input(input_type={"input": np.array([node.size])})
        else:
            nodes[node.name], b = _export_neuron(nir, node)
            if b is not None:
                biases[node.name] = b

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
        bias = biases.pop(edge.target, None)  # the first projection into a biased population carries it
        if bias is None:
            nodes[key] = nir.Linear(weight=weight, metadata=meta)
        else:
            nodes[key] = nir.Affine(weight=weight, bias=bias.astype(weight.dtype, copy=False), metadata=meta)
        edges.append((edge.source, key))
        if edge.delay != 0.0 or math.copysign(1.0, edge.delay) < 0:
            dkey = _unique(f"{key}:delay", used)
            extra_keys.append(dkey)
            nodes[dkey] = nir.Delay(delay=np.full(sizes[edge.target], edge.delay))
            edges += [(key, dkey), (dkey, edge.target)]
        else:
            edges.append((key, edge.target))

    for name, bias in biases.items():  # biased populations without any projection into them
        bkey = _unique(f"{name}:bias", used)
        extra_keys.append(bkey)
        nodes[bkey] = nir.Affine(weight=np.zeros((sizes[name], 1)), bias=bias)
        edges.append((bkey, name))

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


def _export_neuron(nir: Any, node: LIFNode | LINode | IFNode) -> tuple[Any, np.ndarray | None]:
    """The NIR neuron node of a population, and the ``Affine`` bias that gives its ``bias`` (or None)."""
    n = node.size
    fields = {"lif": _LIF_FIELDS, "li": _LI_FIELDS, "if": _IF_FIELDS}[node.kind]
    blob: dict[str, Any] = {"kind": node.kind, "scalar": [f for f in fields if isinstance(getattr(node, f), float)]}
    meta: dict[str, Any] = {}

    def arr(f: str) -> np.ndarray:
        return _full(getattr(node, f), n)

    # The IR bias is the Affine bias b times the import's bias factor: r * w_in (CubaLIF/CubaLI, here
    # tau_syn), r (LIF/LI, here tau_mem; IF, here 1). b = bias / factor can round, so the exact bias also
    # travels as metadata, used on import while it still agrees with the graph.
    bias_factor: np.ndarray | None = None
    if node.kind != "if":
        bias_factor = arr("tau_syn") if not node.instantaneous else arr("tau_mem")
    b = None
    if np.any(np.asarray(node.bias) != 0):
        b = arr("bias") if bias_factor is None else arr("bias").astype(np.float64) / bias_factor
        if isinstance(node.bias, float):
            blob["bias"] = node.bias
        else:
            meta[_BIAS] = np.array(node.bias)
    if node.kind != "li":
        blob["max_spikes"] = node.max_spikes
        if isinstance(node.t_refrac, float):
            blob["t_refrac"] = node.t_refrac
        else:
            blob["t_refrac"] = None
            meta[_T_REFRAC] = np.array(node.t_refrac)
    meta[_NODE] = json.dumps(blob)
    if node.kind == "if":
        # dv/dt = r I with r = 1: a spike through W moves v by W, the IR weight.
        return nir.IF(r=np.ones(n), v_threshold=arr("v_threshold"), v_reset=arr("v_reset"), metadata=meta), b
    if node.instantaneous:
        # tau dv/dt = (v_leak - v) + r I with r = tau: a spike through W moves v by r W / tau = W.
        common = {"tau": arr("tau_mem"), "r": arr("tau_mem"), "v_leak": arr("v_leak")}
        if node.kind == "li":
            return nir.LI(**common, metadata=meta), b
        return nir.LIF(**common, v_threshold=arr("v_threshold"), v_reset=arr("v_reset"), metadata=meta), b
    # w_in = tau_syn and r = 1 make the NIR current jump w_in * W / tau_syn equal W, so the
    # Linear carries our weight unchanged and the import's r * w_in / tau_syn is exactly 1.0.
    common = {"tau_mem": arr("tau_mem"), "tau_syn": arr("tau_syn"), "r": np.ones(n), "v_leak": arr("v_leak")}
    if node.kind == "li":
        return nir.CubaLI(**common, w_in=arr("tau_syn"), metadata=meta), b
    return (
        nir.CubaLIF(
            **common,
            v_threshold=arr("v_threshold"),
            v_reset=arr("v_reset"),
            w_in=arr("tau_syn"),
            metadata=meta,
        ),
        b,
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
    convention: str = "nir",
    dt: float | None = None,
    tau_syn_ratio: float | None = None,
    if_tau: tuple[float, float] | None = None,
) -> Network:
    """The snncomp network of a NIR graph.

    ``time_unit`` is the unit of the graph's time constants and delays (``"s"``
    or ``"ms"``); NIR files do not record it. ``name`` names the network
    (default: the name stored by :func:`to_nir`, else ``"nir"``).

    ``convention`` says how to read the graph: ``"nir"`` (default) follows NIR's
    equations literally; ``"snntorch"``, ``"spyx"``, ``"rockpool"``, ``"norse"``
    and ``"sinabs"`` undo what that library's exporter writes (discrete time
    steps, spikes read as one-step pulses, its ``r``/``w_in``; see
    ``docs/nir.md``). ``dt`` is the exporter's time step in seconds where the
    file does not store it (defaults in :data:`DEFAULT_DT`; snnTorch: 1e-4 s).

    ``LIF``, ``LI`` and ``IF`` import exactly (instantaneous synapses,
    ``tau_syn = 0``; ``IF`` as ``if``), so ``tau_syn_ratio`` and ``if_tau``,
    which configured an approximation in earlier versions, are ignored with a
    ``DeprecationWarning``.

    Raises :class:`NIRError` naming every node that cannot be imported (nothing
    is half-imported) and :class:`NIRUnavailableError` without the ``nir`` package.
    """
    nir = _import_nir()
    if not isinstance(time_unit, str) or time_unit not in TIME_UNITS:
        raise NIRError(
            f"time_unit must be one of {sorted(TIME_UNITS)}, got {time_unit!r}; NIR files do not record "
            "their time unit, so say which one the file's time constants and delays use"
        )
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise NIRError(f"unknown NIR convention {convention!r}; valid conventions: {', '.join(CONVENTIONS)}")
    if dt is not None:
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (math.isfinite(dt) and dt > 0):
            raise NIRError(f"dt must be a time step in seconds > 0, got {dt!r}")
        dt = float(dt)
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"from_nir expects a nir.NIRGraph, got {type(graph).__name__}")
    for option, value in (("tau_syn_ratio", tau_syn_ratio), ("if_tau", if_tau)):
        if value is not None:
            warnings.warn(
                f"from_nir: {option} is deprecated and ignored: NIR LIF, LI and IF now import exactly "
                "(instantaneous synapses, tau_syn = 0)",
                DeprecationWarning,
                stacklevel=2,
            )
    return _Importer(nir, graph, time_unit, name, convention, dt).run()


def read_nir(
    path: str | Path,
    *,
    time_unit: str = "s",
    name: str | None = None,
    convention: str = "nir",
    dt: float | None = None,
    tau_syn_ratio: float | None = None,
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
    return from_nir(
        graph,
        time_unit=time_unit,
        name=name,
        convention=convention,
        dt=dt,
        tau_syn_ratio=tau_syn_ratio,
        if_tau=if_tau,
    )


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
        convention: str,
        dt: float | None,
    ):
        self.nir = nir
        self.graph = graph
        self.time_unit = time_unit
        self.unit = TIME_UNITS[time_unit]
        self.name = name
        self.convention = convention
        self.dt = DEFAULT_DT[convention] if dt is None else dt
        self.biases: dict[str, np.ndarray] = {}  # neuron key -> summed Affine bias reaching it (NIR units)
        self.recovered_dt: float | None = None  # seconds, where the convention recovers dt from the graph
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
        if self.convention == "spyx":
            self.reroute_spyx_recurrence()
        self.collect_biases()
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
                elif bias.ndim > 1 or (bias.ndim == 1 and bias.shape[0] not in (1, leaf.size_out)):
                    self.problem(
                        leaf.where,
                        f"bias has shape {list(bias.shape)}; expected a scalar or one value per output "
                        f"({leaf.size_out})",
                    )
                elif not np.all(np.isfinite(bias)):
                    self.problem(leaf.where, "bias must be finite")
        elif leaf.role == "neuron":
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
                # Sizes are known here: infer_sizes reports every unknown one and run() stops on it.
                pops[key] = _Pop(leaf, name, InputNode(name=name, size=cast(int, leaf.size_out)), None, False)
                continue
            pop = self.convert_neuron(leaf, name)
            if pop is not None:
                pops[key] = pop
        return pops

    def convert_neuron(self, leaf: _Leaf, name: str) -> _Pop | None:
        node, n, t = leaf.node, cast(int, leaf.size_in), leaf.type  # sized: see convert_populations
        kind = _NEURON_TYPES[t]
        blob = _json(leaf.meta.get(_NODE)) if _NODE in leaf.meta else None
        scalars = set(blob.get("scalar", [])) if isinstance(blob, dict) else None

        def raw(p: str, default: float | None = None) -> np.ndarray:
            value = getattr(node, p, None)
            # flatten's param_sizes reported every missing or non-numeric parameter.
            return cast(np.ndarray, _numeric(default if value is None else value))

        def param(arr: np.ndarray, field_name: str, *, time: bool = False) -> float | np.ndarray:
            return _param(arr, n, scalars, field_name, self.unit if time else 1.0)

        # Zero or negative time constants are reported by the IR's validation below, by name.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            mapped = self.neuron_mapping(leaf, n)
        if mapped is None:
            return None
        taus, in_scale, bias_scale, deps = mapped
        params: dict[str, Any] = {}
        for f, value in taus.items():
            params[f] = value if isinstance(value, float) else param(value, f, time=True)
        if kind != "if":
            params["v_leak"] = param(raw("v_leak"), "v_leak")
        if kind != "li":
            params["v_threshold"] = param(raw("v_threshold"), "v_threshold")
            params["v_reset"] = param(raw("v_reset", 0.0), "v_reset")
            if isinstance(blob, dict):
                params["max_spikes"] = blob.get("max_spikes")
                if blob.get("t_refrac") is not None:
                    params["t_refrac"] = blob["t_refrac"]
                elif _T_REFRAC in leaf.meta:
                    params["t_refrac"] = leaf.meta[_T_REFRAC]
        if leaf.key in self.biases:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                bias = self.biases[leaf.key] * bias_scale
            if not np.all(np.isfinite(bias)):
                self.problem(leaf.where, "its Affine bias times r (and w_in) is not finite")
                return None
            params["bias"] = self.exact_bias(leaf, blob, bias, n)
        try:
            ir_node = _MODELS[kind](name=name, size=n, **params)
        except ValidationError as exc:
            reasons = "; ".join(d.message for d in diagnostics_from_validation_error(exc, params))
            self.problem(leaf.where, f"does not make a valid {kind} population: {reasons}")
            return None
        if not np.all(np.isfinite(in_scale)):
            self.problem(leaf.where, "r, w_in and tau give a non-finite input factor")
            return None
        return _Pop(leaf, name, ir_node, in_scale, all(d.dtype == np.float32 for d in deps))

    @staticmethod
    def exact_bias(leaf: _Leaf, blob: Any, bias: np.ndarray, n: int) -> float | np.ndarray:
        """The IR bias: the one snncomp stored while it agrees with the graph's, else the computed one."""
        stored: Any = None
        if isinstance(blob, dict) and isinstance(blob.get("bias"), (int, float)):
            stored = float(blob["bias"])
        elif _BIAS in leaf.meta:
            stored = _numeric(leaf.meta[_BIAS])
        if stored is not None:
            full = np.broadcast_to(np.asarray(stored, dtype=np.float64), (n,))
            if np.allclose(full, bias, rtol=1e-9, atol=1e-12 * max(1.0, float(np.max(np.abs(bias))))):
                return stored if isinstance(stored, float) else np.array(stored)
        flat = bias.reshape(-1)
        return float(flat[0]) if bool(np.all(flat == flat[0])) else np.array(flat)

    def neuron_mapping(
        self, leaf: _Leaf, n: int
    ) -> tuple[dict[str, Any], np.ndarray, np.ndarray, tuple[np.ndarray, ...]] | None:
        """Time constants (in file units), and per target neuron the weight and bias factors.

        The weight factor is the IR weight per unit of NIR weight (``Linear``/``Affine`` ``W``);
        the bias factor the IR ``bias`` per unit of ``Affine`` bias ``b``. With ``convention="nir"``
        they follow NIR's equations; the unit of time cancels from the weights (``r * w_in * W``
        and ``tau`` share it, see docs/nir.md). Derivations of the other conventions: docs/nir.md.
        """
        node, t, conv = leaf.node, leaf.type, self.convention
        cuba = t in ("CubaLIF", "CubaLI")

        def get(p: str, default: float | None = None) -> np.ndarray:
            value = getattr(node, p, None)
            # flatten's param_sizes reported every missing or non-numeric parameter.
            return cast(np.ndarray, _numeric(default if value is None else value))

        def v(arr: np.ndarray) -> np.ndarray:
            return _f64(arr, n)

        r = get("r")
        w_in = get("w_in", 1.0) if cuba else None
        unit = self.unit
        per_second = 1.0 / unit if t == "IF" else 1.0  # IR if bias is dv/dt per second
        if conv == "nir" or (conv == "norse" and t == "IF"):
            if conv != "nir":
                self.approximations.append(f"{leaf.where}: Norse's IF convention is not known; read literally")
            if cuba:
                # tau_syn dI/dt = -I + w_in (W S + b): a spike jumps I by w_in W / tau_syn, the bias drives
                # I towards w_in b; r I enters tau_mem dv/dt. With J = r I (the IR's current) the IR weight
                # is r w_in W / tau_syn and the IR bias (J's rest value) r w_in b.
                assert w_in is not None  # read for cuba types
                tau_syn = get("tau_syn")
                taus = {"tau_mem": get("tau_mem"), "tau_syn": tau_syn}
                return taus, v(r) * v(w_in) / v(tau_syn), v(r) * v(w_in), (r, w_in, tau_syn)
            if t in ("LIF", "LI"):
                # tau dv/dt = (v_leak - v) + r (W S + b): a spike moves v by r W / tau; the bias term is
                # r b, the IR's tau_mem dv/dt = -(v - v_leak) + bias with tau_syn = 0.
                tau = get("tau")
                return {"tau_mem": tau, "tau_syn": 0.0}, v(r) / v(tau), v(r), (r, tau)
            # IF: dv/dt = r (W S + b): a spike moves v by r W; the drift r b is per file unit of time.
            return {}, v(r), v(r) * per_second, (r,)

        if self.dt is None and conv != "rockpool":  # pragma: no cover - every other convention has a default
            self.problem(leaf.where, f"convention {conv!r} needs dt")
            return None
        dt = None if self.dt is None else self.dt / unit  # the step in file units
        if conv in ("snntorch", "spyx"):
            # Discrete time: v[k] = beta v[k-1] + x[k] (snnTorch Leaky, Spyx LIF; the exporter writes
            # tau = dt / (1 - beta)), and for CubaLIF syn[k] = alpha syn[k-1] + x[k], v[k] = beta v[k-1]
            # + syn[k]. A spike adds W to x for one step. The continuous system sampled every dt has
            # exp(-dt / tau_c) = beta, so tau_c = -dt / ln(beta). LIF: a spike jumps v by W (factor 1)
            # and a bias b per step settles v at b / (1 - beta). CubaLIF: the discrete response to a spike
            # is W (beta^(k+1) - alpha^(k+1)) / (beta - alpha); the IR's to a current jump J0 is
            # J0 tau_s / (tau_m - tau_s) (beta^k - alpha^k). Matching the slow term beta^k gives
            # J0 = W beta (tau_m - tau_s) / ((beta - alpha) tau_s) (the fast term differs by a factor
            # alpha / beta, i.e. O(dt / tau)); a bias b per step settles v at b / ((1-alpha)(1-beta)).
            assert dt is not None  # both have a default dt
            if t == "IF":
                return {}, np.ones(n), np.full(n, 1.0 / dt) * per_second, ()
            tau_m = v(get("tau_mem") if cuba else get("tau"))
            beta = 1.0 - dt / tau_m
            if cuba:
                alpha = 1.0 - dt / v(get("tau_syn"))
            else:
                alpha = None
            bad = [a for a in (beta, alpha) if a is not None and not np.all((a > 0) & (a < 1))]
            if bad:
                self.problem(
                    leaf.where,
                    f"with dt = {self.dt:g} s its time constants give decay factors 1 - dt/tau outside (0, 1); "
                    "is dt the one the exporter used?",
                )
                return None
            tm = -dt / np.log(beta)
            if not cuba:
                return {"tau_mem": tm, "tau_syn": 0.0}, np.ones(n), 1.0 / (1.0 - beta), ()
            assert alpha is not None  # set for cuba types
            ts = -dt / np.log(alpha)
            wf = _slow_match(alpha, beta, beta, tm, ts, dt)
            self.approximations.append(
                f"{leaf.where}: discrete {conv} synapse (alpha, beta) imported with exact time constants and "
                "the weight matched on the slow component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tm, "tau_syn": ts}, wf, 1.0 / ((1.0 - alpha) * (1.0 - beta)), ()
        if conv == "rockpool":
            # Rockpool writes the exact tau and r = tau exp(-dt/tau) / dt (w_in = 1), so dt is recovered
            # from r and tau. LIFTorch per step: isyn += x; vmem *= alpha_m; isyn *= beta_s; vmem += isyn
            # + bias (alpha_m = exp(-dt/tau_mem), beta_s = exp(-dt/tau_syn)). A spike's response is
            # W beta_s (alpha_m^(k+1) - beta_s^(k+1)) / (alpha_m - beta_s); matching the slow term as for
            # snnTorch gives J0 = W beta_s alpha_m (tau_m - tau_s) / ((alpha_m - beta_s) tau_s); a bias b
            # per step settles v at beta_s b / ((1 - beta_s)(1 - alpha_m)).
            tau_m = v(get("tau_mem") if cuba else get("tau"))
            if dt is None:
                dt = _rockpool_dt(float(v(r)[0]), float(tau_m[0]))
                if dt is None:
                    self.problem(leaf.where, "cannot recover dt from r = tau exp(-dt/tau) / dt; pass dt")
                    return None
                if self.recovered_dt is None:
                    self.recovered_dt = dt * unit
            a_m = np.exp(-dt / tau_m)
            if not cuba:
                # LIFNeuronTorch / ExpSynTorch: x[k] added to a state that decays by alpha_m per step.
                return {"tau_mem": tau_m, "tau_syn": 0.0}, np.ones(n), 1.0 / (1.0 - a_m), ()
            tau_s = v(get("tau_syn"))
            b_s = np.exp(-dt / tau_s)
            wf = b_s * _slow_match(b_s, a_m, a_m, tau_m, tau_s, dt)
            self.approximations.append(
                f"{leaf.where}: discrete Rockpool synapse imported with the weight matched on the slow "
                "component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tau_m, "tau_syn": tau_s}, wf, b_s / ((1.0 - b_s) * (1.0 - a_m)), ()
        if conv == "norse":
            # Norse writes tau = dt / tau_inv = dt * tau_true (r = 1, w_in = 1, no v_reset: Norse's default
            # 0) and integrates with Euler steps of dt. LIFCell per step: i += x; v += a (v_leak - v + i);
            # i *= alpha, with a = dt/tau_mem, beta = 1 - a, alpha = 1 - dt/tau_syn: the response to a spike
            # W is a W (beta^(k+1) - alpha^(k+1)) / (beta - alpha), snnTorch's Synaptic with gain a, so the
            # same slow-term match applies, with tau_c = -dt / ln(1 - dt/tau) (the sampled decays); a bias
            # b added to i every step settles v at v_leak + b tau_syn / dt. LIFBoxCell/LIBoxCell: v += a
            # (v_leak - v + x), snnTorch's Leaky with gain a: a spike jumps v by a W, a bias settles at b.
            assert dt is not None  # norse has a default dt
            tau_m = v(get("tau_mem") if cuba else get("tau")) / dt  # Norse's tau, in file units
            a = dt / tau_m
            beta = 1.0 - a
            alpha = 1.0 - dt * dt / v(get("tau_syn")) if cuba else np.full(n, 0.5)  # dt / (tau_written / dt)
            bad = [d for d in (beta, alpha) if not np.all((d > 0) & (d < 1))]
            if bad:
                self.problem(
                    leaf.where,
                    f"with dt = {self.dt:g} s its time constants give Euler factors 1 - dt/tau outside (0, 1); "
                    "is dt the one the exporter used?",
                )
                return None
            tm = -dt / np.log(beta)
            if not cuba:
                return {"tau_mem": tm, "tau_syn": 0.0}, v(r) * a, v(r), ()
            assert w_in is not None  # read for cuba types
            ts = -dt / np.log(alpha)
            wf = v(r) * v(w_in) * a * _slow_match(alpha, beta, beta, tm, ts, dt)
            self.approximations.append(
                f"{leaf.where}: Norse's Euler synapse imported with the sampled decays and the weight matched on "
                "the slow component of the response (fast part differs by O(dt/tau))"
            )
            return {"tau_mem": tm, "tau_syn": ts}, wf, v(r) * v(w_in) / (1.0 - alpha), ()
        # sinabs: time in steps of dt. IAF: v += x per step (r = 1); a bias b per step is b / dt per
        # second. LIF/ExpLeak: v = alpha v + (1 - alpha) x with alpha = exp(-1 / tau_steps) (norm_input,
        # Sinabs' default), so a spike jumps v by (1 - alpha) W and a bias b settles v at b.
        if t == "IF":
            return {}, v(r), v(r) / dt * per_second, ()
        if cuba:
            self.problem(leaf.where, "Sinabs writes no CubaLIF/CubaLI; import this graph with another convention")
            return None
        tau_steps = v(get("tau"))
        alpha = np.exp(-1.0 / tau_steps)
        return {"tau_mem": tau_steps * dt, "tau_syn": 0.0}, v(r) * (1.0 - alpha), v(r), ()

    def reroute_spyx_recurrence(self) -> None:
        """Spyx writes a recurrent layer as Input -> w_rec -> lif -> w_rec: its input would pass w_rec.

        Spyx computes ``V = beta V + x + spikes @ w_rec``: the input enters the neurons directly. An edge
        from a subgraph's Input into a weight node that forms a loop with a neuron goes to the neuron.
        """
        edges = set(self.edges)
        new: list[tuple[str, str]] = []
        for s, d in self.edges:
            src, dst = self.leaves[s], self.leaves[d]
            loop = [a for a, b in edges if b == d and a != s and self.leaves[a].role == "neuron" and (d, a) in edges]
            if src.type == "Input" and src.role == "pass" and dst.role == "linear" and len(loop) == 1:
                new.append((s, loop[0]))
                self.notes.append(f"spyx: the input of '{loop[0]}' enters it directly, not through '{d}'")
            else:
                new.append((s, d))
        self.edges = new

    def collect_biases(self) -> None:
        """Every ``Affine`` bias, carried forward through weight nodes to the neurons it reaches.

        An Affine's output is ``W x + b`` for its summed input ``x``, so its bias enters each path once
        (however many sources feed it); a later ``Linear``/``Affine`` multiplies it by its weight, a
        ``Scale`` scales it, a ``Delay`` leaves a constant unchanged.
        """
        out_edges: dict[str, list[str]] = {k: [] for k in self.leaves}
        for s, d in self.edges:
            out_edges[s].append(d)
        for leaf in self.leaves.values():
            if leaf.type != "Affine" or leaf.role == "ignored":
                continue
            b = _numeric(leaf.node.bias)
            if b is None or not np.any(b != 0) or leaf.size_out is None:
                continue
            self.push_bias(leaf, leaf.key, _f64(b, leaf.size_out), out_edges, (leaf.key,))

    def push_bias(
        self, origin: _Leaf, key: str, vec: np.ndarray, out_edges: dict[str, list[str]], seen: tuple[str, ...]
    ) -> None:
        for dst in out_edges[key]:
            leaf = self.leaves[dst]
            if leaf.role == "neuron":
                prev = self.biases.get(dst)
                self.biases[dst] = vec.copy() if prev is None else prev + vec
            elif leaf.role == "output":
                self.problem(
                    origin.where,
                    f"has a nonzero bias that reaches {leaf.where}; a constant input can only enter a neuron "
                    "population (as its bias), not a graph output",
                )
            elif leaf.role in ("linear", "scale", "delay", "pass") and dst not in seen:
                # Weights and scales are numeric: flatten reported any that are not.
                if leaf.role == "linear":
                    nxt = cast(np.ndarray, _numeric(leaf.node.weight)).astype(np.float64) @ vec
                elif leaf.role == "scale":
                    nxt = _f64(cast(np.ndarray, _numeric(leaf.node.scale)), len(vec)) * vec
                else:
                    nxt = vec
                self.push_bias(origin, dst, nxt, out_edges, (*seen, dst))

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
            n = cast(int, pop.leaf.size_out)  # sized: see convert_populations
            # Spyx tests the previous step's v: a neuron's spike leaves one step after its crossing, so
            # every projection out of a neuron (not out of an Input) is delayed by one step.
            lag: tuple[float, ...] = ()
            if self.convention == "spyx" and self.dt is not None and pop.node.kind != "input":
                lag = (float(self.dt),)
            start = _Chain(None, False, None, None, lag, ())
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
        # Sized by infer_sizes, and the parameters are numeric: flatten reported any that are not.
        cur = cast(int, leaf.size_in)
        if role == "linear":
            w = cast(np.ndarray, _numeric(node.weight))
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
            s = _f64(cast(np.ndarray, _numeric(node.scale)), cur)
            base = np.eye(cur) if chain.matrix is None else chain.matrix.astype(np.float64)
            path = (*chain.path, leaf.key)
            return _Chain(s[:, None] * base, chain.mixed, chain.src_delay, chain.tgt_delay, chain.fixed_delay, path)
        # delay: in file units; delays before the first weight node belong to the source's channels
        d = cast(np.ndarray, _numeric(node.delay))
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
        n_tgt = cast(int, target.leaf.size_in)  # sized: see convert_populations
        matrix = np.eye(n_src) if chain.matrix is None else chain.matrix
        w_dtype = np.float32 if matrix.dtype == np.float32 else np.float64
        scale = cast(np.ndarray, target.in_scale)  # a target is a neuron population, which has one
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
                assert linear is not None  # ours comes from it
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
            if self.convention != "nir":
                dt = self.dt if self.dt is not None else self.recovered_dt
                metadata = {**metadata, "nir.convention": self.convention, "nir.dt": dt}
                if self.convention == "spyx":
                    self.notes.append(
                        "spyx: Spyx tests the previous step's v, so projections out of neurons are delayed by dt; "
                        "Spyx reports each spike one step after snncomp's"
                    )
                if self.convention == "rockpool":
                    self.notes.append(
                        "rockpool: Rockpool's exporter drops a LIFTorch's recurrent weights (has_rec) and its "
                        "own bias parameter; if the model had them, they are missing here"
                    )
                if self.convention in ("spyx", "rockpool", "sinabs") or (
                    self.convention == "snntorch" and any(lf.type in ("LIF", "CubaLIF") for lf in self.leaves.values())
                ):
                    self.notes.append(
                        f"{self.convention}: snncomp resets v to v_reset after a spike; a model that resets by "
                        "subtracting the threshold (the default of snnTorch, Spyx, Rockpool and Sinabs) "
                        "differs after any overshoot"
                    )
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
    flat: np.ndarray = arr.astype(dtype, copy=False).reshape(-1)
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


def _slow_match(
    fast: np.ndarray, slow: np.ndarray, gain: np.ndarray, tau_slow: np.ndarray, tau_fast: np.ndarray, dt: float
) -> np.ndarray:
    """IR current jump per unit jump of a discrete synapse, matched on the slowly decaying term.

    The discrete response is ``gain (slow^(k+1) - fast^(k+1)) / (slow - fast)`` per unit input (times
    ``fast`` for Rockpool's order), the IR's ``J0 tau_fast / (tau_slow - tau_fast) (slow^k - fast^k)``;
    equal slow terms give ``J0 = gain (tau_slow - tau_fast) / ((slow - fast) tau_fast)``, whose limit for
    equal time constants is ``tau / dt``. Here "slow" and "fast" just name the two decays (either may be
    the slower): the formula is symmetric in that sense.
    """
    diff = slow - fast
    near = np.abs(diff) < 1e-9
    safe = np.where(near, 1.0, diff)
    return np.where(near, tau_slow / dt, gain * (tau_slow - tau_fast) / (safe * tau_fast))


def _rockpool_dt(r: float, tau: float) -> float | None:
    """The ``dt`` with ``r = tau exp(-dt/tau) / dt`` (Rockpool's export), by bisection on x = dt / tau."""
    if not (math.isfinite(r) and math.isfinite(tau) and r > 0 and tau > 0):
        return None
    lo, hi = 1e-12, 50.0  # exp(-x)/x decreases from huge to ~4e-24 over this range
    f = lambda x: math.exp(-x) / x - r  # noqa: E731
    if f(lo) < 0 or f(hi) > 0:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi) * tau


def _delay_groups(delays: np.ndarray) -> list[tuple[float, np.ndarray]]:
    """Split a per-synapse delay matrix into (delay, mask) pairs, one projection each."""
    return [(float(d), delays == d) for d in np.unique(delays)]


def _sanitize(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:200]
    if out and not re.match(r"[A-Za-z0-9_]", out[0]):
        out = "_" + out[:199]
    return out
