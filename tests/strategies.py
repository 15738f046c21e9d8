"""Hypothesis strategies for random valid networks (reused by every test module).

Structure (populations, kinds, sizes, which parameters are per-neuron, edges,
masks, delays, dtypes) is drawn by hypothesis so it shrinks well; bulk array
values come from a numpy generator seeded by a drawn integer, which keeps large
weight matrices cheap to generate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from snncomp.ir import Edge, InputNode, LIFNode, LINode, Network

LIF_RANGES: dict[str, tuple[float, float]] = {
    "tau_mem": (2e-3, 20e-3),
    "tau_syn": (1e-3, 10e-3),
    "v_threshold": (0.5, 1.5),
    "v_leak": (-0.3, 0.2),
    "v_reset": (-0.3, 0.2),
    "t_refrac": (0.0, 2e-3),
}
LI_FIELDS = ("tau_mem", "tau_syn", "v_leak")


def _param(draw: Any, rng: np.random.Generator, field: str, size: int) -> float | np.ndarray:
    lo, hi = LIF_RANGES[field]
    if draw(st.booleans()):
        return float(rng.uniform(lo, hi))
    return rng.uniform(lo, hi, size=size)


@st.composite
def networks(
    draw: Any,
    *,
    max_size: int = 50,
    max_inputs: int = 2,
    max_neuron_pops: int = 4,
    feedforward: bool | None = None,
    kinds: tuple[str, ...] = ("lif", "li"),
    delays: bool = True,
    masks: bool = True,
    dtypes: tuple[str, ...] = ("float64", "float32"),
    max_spikes: bool = True,
) -> Network:
    """A random valid network.

    ``feedforward``: True gives a DAG, False forces at least one cycle where
    possible, None lets hypothesis choose. ``li`` populations only receive
    (they are readouts), so cycles run through ``lif`` populations only.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = draw(st.integers(1, max_inputs))
    n_pop = draw(st.integers(1, max_neuron_pops))
    nodes: list[Any] = []
    for i in range(n_in):
        nodes.append(InputNode(name=f"in{i}", size=draw(st.integers(1, max_size))))
    pops: list[Any] = []
    for i in range(n_pop):
        kind = draw(st.sampled_from(kinds))
        size = draw(st.integers(1, max_size))
        if kind == "lif":
            params = {f: _param(draw, rng, f, size) for f in LIF_RANGES}
            # v_reset and v_leak below threshold by construction of the ranges.
            ms = draw(st.one_of(st.none(), st.integers(1, 5))) if max_spikes else None
            pops.append(LIFNode(name=f"p{i}", size=size, max_spikes=ms, **params))
        else:
            params = {f: _param(draw, rng, f, size) for f in LI_FIELDS}
            pops.append(LINode(name=f"p{i}", size=size, **params))
    nodes.extend(pops)
    if feedforward is None:
        feedforward = draw(st.booleans())

    edges: list[Edge] = []
    sizes = {n.name: n.size for n in nodes}
    # Every population gets at least one incoming projection from something earlier.
    for j, pop in enumerate(pops):
        earlier = [n.name for n in nodes[:n_in]] + [p.name for p in pops[:j] if p.kind == "lif"]
        src = draw(st.sampled_from(earlier))
        edges.append(_edge(draw, rng, src, pop.name, sizes, delays, masks, dtypes))
    lif_names = [p.name for p in pops if p.kind == "lif"]
    extra = draw(st.integers(0, 3))
    order = {n.name: i for i, n in enumerate(nodes)}
    for _ in range(extra):
        src = draw(st.sampled_from([n.name for n in nodes if n.kind != "li"]))
        dst = draw(st.sampled_from([p.name for p in pops]))
        if feedforward and order[src] >= order[dst]:
            continue
        edges.append(_edge(draw, rng, src, dst, sizes, delays, masks, dtypes))
    if not feedforward and lif_names:
        # Guarantee recurrence: a self-loop or a back edge between lif populations.
        a = draw(st.sampled_from(lif_names))
        b = draw(st.sampled_from(lif_names))
        src, dst = (b, a) if order[b] >= order[a] else (a, b)
        edges.append(_edge(draw, rng, src, dst, sizes, delays, masks, dtypes))
    net = Network(name=f"net{seed % 1000}", nodes=tuple(nodes), edges=tuple(edges))
    if not net.output_names():
        # Every population feeds another (a cycle through all of them): without declared outputs the
        # compiler refuses the network, so name the last one (earlier this compiled to an empty program
        # and made the property tests pass vacuously).
        net = net.replace(outputs=(pops[-1].name,))
    return net


def _edge(
    draw: Any,
    rng: np.random.Generator,
    src: str,
    dst: str,
    sizes: dict[str, int],
    delays: bool,
    masks: bool,
    dtypes: tuple[str, ...],
) -> Edge:
    shape = (sizes[src], sizes[dst])
    dtype = draw(st.sampled_from(dtypes))
    weight = rng.normal(0.0, 1.0, size=shape).astype(dtype)
    mask = None
    if masks and draw(st.booleans()):
        mask = rng.random(shape) < 0.7
    delay = 0.0
    if delays and draw(st.booleans()):
        delay = float(rng.uniform(0.0, 5e-3))
    return Edge(source=src, target=dst, weight=weight, mask=mask, delay=delay)
