"""NIR export: :func:`to_nir` and :func:`write_nir`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...ir import IFNode, LIFNode, LINode, Network
from ._common import (
    _BIAS,
    _EDGE,
    _FORMAT,
    _IF_FIELDS,
    _LI_FIELDS,
    _LIF_FIELDS,
    _MARK,
    _MASK,
    _MASKED,
    _NODE,
    _T_REFRAC,
    NIRError,
    _import_nir,
    _unique,
)

if TYPE_CHECKING:  # pragma: no cover - for annotations only; nir stays optional
    import nir


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


def write_nir(network: Network, path: str | Path) -> None:
    """Write ``network`` to a NIR file (HDF5) with :func:`to_nir` and ``nir.write``."""
    nir = _import_nir()
    graph = to_nir(network)
    try:
        nir.write(Path(path), graph)
    except OSError as exc:
        raise NIRError(f"{path}: cannot write NIR file: {exc}") from None
