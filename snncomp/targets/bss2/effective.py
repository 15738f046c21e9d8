"""What the chip computes, as an IR network: quantized weights and chip-rounded parameters.

The JAX simulator runs :func:`dequantized_network` to predict what the chip (or the mock emulator)
does with a compiled network; agreement between the two is then evidence about the mock.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from ...errors import SnnCompError
from ...ir import SPIKING_KINDS, Edge, LIFNode, Network
from ...passes import from_graph
from ._annotations import HwParams, ParameterMap, Quantized

__all__ = ["dequantized_network", "effective_weights"]


def _graph(source: Any) -> nx.MultiDiGraph:
    if isinstance(source, nx.MultiDiGraph):
        return source
    g = getattr(source, "graph", None)
    if isinstance(g, nx.MultiDiGraph):
        return g
    raise SnnCompError(f"expected a bss2 compile result or graph, got {type(source).__name__}")


def effective_weights(source: Any) -> dict[str, np.ndarray]:
    """Per projection key: the dequantized weight ``w_hw / scale`` (float64; masked-out entries 0).

    ``source`` is a ``CompileResult`` of a pipeline that ran ``quantize``, or its graph.
    """
    g = _graph(source)
    out = {}
    for _u, _v, key, data in g.edges(keys=True, data=True):
        quant: Quantized | None = data["ann"].get("quant")
        if quant is None:
            raise SnnCompError(f"projection '{key}' is not quantized; run the bss2 pipeline (quantize)")
        out[key] = quant.effective()
    return out


def _param(x: np.ndarray | float) -> float | np.ndarray:
    """A per-neuron array as one scalar when uniform (the IR's compact form)."""
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return float(a)
    return float(a[0]) if np.all(a == a[0]) else a.copy()


def _realised_node(node: Any, hw: HwParams, speedup: float) -> Any:
    """What the chip runs for one population (see :func:`dequantized_network`)."""
    fields = {f: getattr(node, f) for f in type(node).model_fields}
    if node.kind in SPIKING_KINDS:
        fields["t_refrac"] = _param(hw.refractory * speedup)
    if hw.weight_factor is not None:  # instantaneous synapses: the chip's shortest current-based synapse
        fields["tau_syn"] = _param(hw.tau_syn * speedup)
    if node.kind == "if":  # the largest leaking membrane, resting at 0
        del fields["bias"]  # refused by map-parameters unless 0
        return LIFNode.model_validate({**fields, "kind": "lif", "tau_mem": _param(hw.tau_mem * speedup), "v_leak": 0.0})
    bias = np.asarray(getattr(node, "bias", 0.0))
    if np.any(bias != 0):  # a shifted leak, at rest from t = 0
        fields["v_leak"] = _param(np.asarray(node.v_leak, np.float64) + bias)
        fields["bias"] = 0.0
    return type(node).model_validate(fields)


def dequantized_network(source: Any) -> Network:
    """The network the chip realises, in model units.

    Every weight becomes its quantized value ``w_hw / scale`` (saturated weights included; into a population
    with instantaneous synapses that is the current jump of the chip's short synapse, about ``(tau_mem -
    tau_syn) / tau_syn`` times the model's voltage jump, ``docs/bss2.md``) and every spiking population's
    ``t_refrac`` the refractory time the chip's counter realises, converted back with the speedup
    (``max_spikes=1`` populations get the long refractory period used to keep them silent). Where the
    chip approximates the model, the network says what the chip does instead: instantaneous synapses
    (``tau_syn = 0``) get the chip's smallest ``tau_syn``; a ``bias`` becomes the shifted leak ``v_leak +
    bias`` (with ``bias = 0``: the membrane rests there from the start); an ``if`` population becomes a
    ``lif`` with the chip's largest ``tau_mem``, ``v_leak = 0`` and that ``tau_syn``. Everything else is
    unchanged. ``metadata["bss2.dequantized"]`` records the scale and speedup.
    """
    g = _graph(source)
    net = from_graph(g)
    weights = effective_weights(g)
    keys = net.edge_keys()
    by_index = {d["index"]: k for _u, _v, k, d in g.edges(keys=True, data=True)}
    edges = []
    for i, edge in enumerate(net.edges):
        key = by_index.get(i, keys[i])
        edges.append(
            Edge(
                source=edge.source,
                target=edge.target,
                weight=weights[key],
                mask=edge.mask,
                delay=edge.delay,
                name=edge.name,
            )
        )
    pmap: ParameterMap | None = g.graph["ann"].get("hw_params")
    nodes = []
    for node in net.nodes:
        hw: HwParams | None = g.nodes[node.name]["ann"].get("hw")
        if node.kind != "input" and hw is not None and pmap is not None:
            node = _realised_node(node, hw, pmap.speedup)
        nodes.append(node)
    quant = g.graph["ann"].get("quantization")
    meta = dict(net.metadata)
    meta["bss2.dequantized"] = {
        "scale": float(quant.scale) if quant is not None else None,
        "speedup": float(pmap.speedup) if pmap is not None else None,
    }
    return net.replace(nodes=tuple(nodes), edges=tuple(edges), metadata=meta)
