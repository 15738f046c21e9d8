"""Independent float64 reference integrators, used to check the NIR mapping.

- :func:`simulate_nir` integrates NIR's own equations (the docstrings of the
  ``nir`` package) on a ``nir.NIRGraph``: ``CubaLIF``, ``CubaLI``, ``LIF``,
  ``LI``, ``IF``, ``Linear``, ``Affine`` (zero bias), ``Scale``, ``Delay`` and
  nested subgraphs, with input spikes as Dirac impulses.
- :func:`simulate_ir` integrates the snncomp IR's equations (``docs/ir.md``) on
  an :class:`snncomp.ir.Network`.

Neither uses snncomp's importer or simulator. Both run on the same grid
``t_k = k * dt`` with the same conventions, so that an exact mapping gives the
same spikes and voltages up to float rounding:

1. between grid points the state evolves by the exact solution of the linear
   ODEs (no input arrives between grid points);
2. at step ``k`` the impulses scheduled for ``k`` arrive;
3. a neuron whose ``v`` is above threshold spikes at ``t_k`` and is reset;
4. spikes emitted at step ``k`` (inputs and neurons) arrive at step
   ``k + 1 + round(delay / dt)`` (one step of latency even without delay).

Input spikes are given as integer step indices, so both sides see the same
times whatever their unit of time.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass

import nir
import numpy as np

from snncomp.ir import Network

__all__ = ["Result", "simulate_ir", "simulate_nir"]


@dataclass
class Result:
    """Spikes as ``(step, neuron)`` rows in step order, and ``v`` after every step ``[steps, n]``."""

    spikes: dict[str, np.ndarray]
    v: dict[str, np.ndarray]

    def counts(self, name: str, n: int) -> np.ndarray:
        return np.bincount(self.spikes[name][:, 1], minlength=n) if len(self.spikes[name]) else np.zeros(n, int)


def _decay(v, i, v_leak, tau_mem, tau_syn, r, dt):
    """Exact solution over ``dt`` of ``tau_mem dv/dt = v_leak - v + r I``, ``tau_syn dI/dt = -I``."""
    a = np.exp(-dt / tau_mem)
    b = np.exp(-dt / tau_syn)
    same = np.isclose(tau_mem, tau_syn, rtol=1e-12, atol=0)
    # Particular solution of the current term; the limit t/tau exp(-t/tau) when the constants coincide.
    safe = np.where(same, 1.0, tau_syn - tau_mem)
    c = np.where(same, dt / tau_mem * a, tau_syn / safe * (b - a))
    return v_leak + (v - v_leak) * a + r * i * c, i * b


def _vec(x, n):
    arr = np.asarray(x, dtype=np.float64)
    return np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (n,)).astype(np.float64)


# ------------------------------------------------------------------------------------------
# NIR
# ------------------------------------------------------------------------------------------


def _flatten(graph, prefix=""):
    """(nodes, edges, top) with dotted keys; ``top`` holds the graph's own Input/Output keys.

    An edge to a subgraph enters at its Input nodes and one from it leaves at its Output nodes;
    inside, those act as identities.
    """
    nodes, edges, sub = {}, [], {}
    top = set()
    for key, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            n2, e2, t2 = _flatten(node, f"{prefix}{key}.")
            nodes.update(n2)
            edges += e2
            sub[key] = (
                sorted(k for k in t2 if isinstance(n2[k], nir.Input)),
                sorted(k for k in t2 if isinstance(n2[k], nir.Output)),
            )
            continue
        nodes[prefix + key] = node
        if isinstance(node, (nir.Input, nir.Output)):
            top.add(prefix + key)
    for a, b in graph.edges:
        srcs = sub[a][1] if a in sub else [prefix + a]
        dsts = sub[b][0] if b in sub else [prefix + b]
        edges += [(s, d) for s in srcs for d in dsts]
    return nodes, edges, top


NEURONS = (nir.CubaLIF, nir.CubaLI, nir.LIF, nir.LI, nir.IF)
WEIGHTS = (nir.Linear, nir.Affine)


def _sizes(nodes, edges, top_in):
    """Sizes of each node's input and output, from shapes and parameters, then along edges."""
    size_in, size_out = {}, {}
    for k, node in nodes.items():
        if isinstance(node, WEIGHTS):
            size_out[k], size_in[k] = np.asarray(node.weight).shape
            continue
        if k in top_in:
            size_out[k] = int(np.prod(node.input_type["input"]))
            continue
        for p in ("tau_mem", "tau", "r", "v_threshold", "scale", "delay"):
            arr = np.asarray(getattr(node, p, 0.0))
            if arr.ndim == 1 and arr.shape[0] > 1:
                size_in[k] = size_out[k] = arr.shape[0]
    for _ in range(2 * len(nodes) + 2):
        for k, node in nodes.items():
            if not isinstance(node, WEIGHTS) and k not in top_in:
                n = size_in.get(k, size_out.get(k))
                if n is not None:
                    size_in[k] = size_out[k] = n
        for s, d in edges:
            if s in size_out and d not in size_in:
                size_in[d] = size_out[s]
            if d in size_in and s not in size_out:
                size_out[s] = size_in[d]
    return size_in, size_out


def simulate_nir(graph: nir.NIRGraph, inputs: dict[str, np.ndarray], *, dt: float, steps: int) -> Result:
    """Integrate NIR's equations; ``dt`` is in the graph's unit of time; inputs are ``(step, channel)`` rows.

    ``CubaLIF``: ``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = v_leak - v + r I``, spike when
    ``v > v_threshold`` then ``v = v_reset``; a Dirac ``S`` of area ``x`` makes ``I`` jump by
    ``w_in x / tau_syn``. ``LIF``: ``tau dv/dt = v_leak - v + r I`` with ``I`` the Dirac input
    itself, so ``v`` jumps by ``r x / tau``. ``IF``: ``dv/dt = r I``, ``v`` jumps by ``r x``.
    ``CubaLI``/``LI``: the same without threshold. Initial state ``v = v_leak`` (``0`` for IF), ``I = 0``.
    """
    nodes, edges, top = _flatten(graph)
    top_in = {k for k in top if isinstance(nodes[k], nir.Input)}
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    for s, d in edges:
        preds[d].append(s)
    neurons = [k for k, n in nodes.items() if isinstance(n, NEURONS)]
    transfers = [
        k
        for k, n in nodes.items()
        if isinstance(n, (*WEIGHTS, nir.Scale, nir.Delay)) or (isinstance(n, (nir.Input, nir.Output)) and k not in top)
    ]
    size_in, sizes = _sizes(nodes, edges, top_in)

    state = {}
    for k in neurons:
        node, n = nodes[k], sizes[k]
        p = {"r": _vec(node.r, n)}
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            p |= {"tau_mem": _vec(node.tau_mem, n), "tau_syn": _vec(node.tau_syn, n), "w_in": _vec(node.w_in, n)}
        if isinstance(node, (nir.LIF, nir.LI)):
            p["tau"] = _vec(node.tau, n)
        p["v_leak"] = _vec(getattr(node, "v_leak", 0.0), n)
        if isinstance(node, (nir.CubaLIF, nir.LIF, nir.IF)):
            p["v_threshold"] = _vec(node.v_threshold, n)
            p["v_reset"] = _vec(0.0 if node.v_reset is None else node.v_reset, n)
        v0 = np.zeros(n) if isinstance(node, nir.IF) else p["v_leak"].copy()
        state[k] = {"p": p, "v": v0, "i": np.zeros(n), "pending": np.zeros(n)}

    order = list(
        graphlib.TopologicalSorter({k: [p for p in preds[k] if p in transfers] for k in transfers}).static_order()
    )
    delay_buf: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for k in order:
        if isinstance(nodes[k], nir.Delay):
            d_steps = np.rint(_vec(nodes[k].delay, sizes[k]) / dt).astype(int)
            delay_buf[k] = (d_steps, np.zeros((steps + 1, sizes[k])))

    spikes: dict[str, list[tuple[int, int]]] = {k: [] for k in neurons}
    trace = {k: np.zeros((steps, sizes[k])) for k in neurons}
    counts = {}
    for k in top_in:
        c = np.zeros((steps, sizes[k]))
        rows = np.asarray(inputs.get(k, np.zeros((0, 2), int))).reshape(-1, 2)
        np.add.at(c, (rows[:, 0], rows[:, 1]), 1.0)
        counts[k] = c

    for step in range(steps):
        emitted: dict[str, np.ndarray] = {k: counts[k][step] for k in top_in}
        for k in neurons:
            st, node, p = state[k], nodes[k], state[k]["p"]
            if step > 0:
                if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                    st["v"], st["i"] = _decay(st["v"], st["i"], p["v_leak"], p["tau_mem"], p["tau_syn"], p["r"], dt)
                elif isinstance(node, (nir.LIF, nir.LI)):
                    st["v"] = p["v_leak"] + (st["v"] - p["v_leak"]) * np.exp(-dt / p["tau"])
            x = st["pending"]
            if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
                st["i"] = st["i"] + p["w_in"] * x / p["tau_syn"]
            elif isinstance(node, (nir.LIF, nir.LI)):
                st["v"] = st["v"] + p["r"] * x / p["tau"]
            else:
                st["v"] = st["v"] + p["r"] * x
            if "v_threshold" in p:
                fired = st["v"] > p["v_threshold"]
                st["v"] = np.where(fired, p["v_reset"], st["v"])
                spikes[k] += [(step, int(j)) for j in np.flatnonzero(fired)]
                emitted[k] = fired.astype(np.float64)
            trace[k][step] = st["v"]
        values: dict[str, np.ndarray] = dict(emitted)
        for k in order:
            node, n = nodes[k], sizes[k]
            x = np.zeros(size_in[k])
            for p in preds[k]:
                if p in values:
                    x = x + values[p]
            if isinstance(node, (nir.Linear, nir.Affine)):
                if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
                    raise NotImplementedError("the reference has no constant currents (Affine bias)")
                y = np.asarray(node.weight, dtype=np.float64) @ x
            elif isinstance(node, nir.Scale):
                y = _vec(node.scale, n) * x
            elif isinstance(node, nir.Delay):
                d_steps, buf = delay_buf[k]
                buf[step] = x
                src = step - d_steps
                y = np.where(src >= 0, buf[np.clip(src, 0, None), np.arange(n)], 0.0)
            else:
                y = x
            values[k] = y
        for k in neurons:
            total = np.zeros(sizes[k])
            for p in preds[k]:
                if p in values:
                    total = total + values[p]
            state[k]["pending"] = total
    return Result({k: np.array(v, dtype=int).reshape(-1, 2) for k, v in spikes.items()}, trace)


# ------------------------------------------------------------------------------------------
# snncomp IR
# ------------------------------------------------------------------------------------------


def simulate_ir(network: Network, inputs: dict[str, np.ndarray], *, dt: float, steps: int) -> Result:
    """Integrate the IR's equations (seconds); inputs are ``(step, channel)`` rows per input node.

    ``tau_mem dv/dt = -(v - v_leak) + I``, ``tau_syn dI/dt = -I``; a spike through weight ``w``
    adds ``w`` to ``I`` after the edge's delay; ``lif`` spikes when ``v > v_threshold``, resets to
    ``v_reset``, holds ``v`` there for ``t_refrac`` and is silent after ``max_spikes`` spikes.
    """
    nodes = {n.name: n for n in network.nodes}
    pops = [n for n in network.nodes if n.kind != "input"]
    max_delay = max((int(np.rint(e.delay / dt)) for e in network.edges), default=0)
    arrive = {p.name: np.zeros((steps + max_delay + 2, p.size)) for p in pops}
    out_edges: dict[str, list] = {n.name: [] for n in network.nodes}
    for e in network.edges:
        out_edges[e.source].append((e.target, np.asarray(e.effective_weight(), np.float64), int(np.rint(e.delay / dt))))

    st = {}
    for p in pops:
        n = p.size
        s = {k: _vec(getattr(p, k), n) for k in ("tau_mem", "tau_syn", "v_leak")}
        if p.kind == "lif":
            s |= {k: _vec(getattr(p, k), n) for k in ("v_threshold", "v_reset")}
            s["refrac"] = np.rint(_vec(p.t_refrac, n) / dt).astype(int)
            s["until"] = np.full(n, -1)
            s["count"] = np.zeros(n, int)
        s["v"], s["i"] = s["v_leak"].copy(), np.zeros(n)
        st[p.name] = s

    spikes: dict[str, list[tuple[int, int]]] = {p.name: [] for p in pops}
    trace = {p.name: np.zeros((steps, p.size)) for p in pops}
    counts = {}
    for name, node in nodes.items():
        if node.kind == "input":
            c = np.zeros((steps, node.size))
            rows = np.asarray(inputs.get(name, np.zeros((0, 2), int))).reshape(-1, 2)
            np.add.at(c, (rows[:, 0], rows[:, 1]), 1.0)
            counts[name] = c

    for step in range(steps):
        emitted = {name: c[step] for name, c in counts.items()}
        for p in pops:
            s = st[p.name]
            if step > 0:
                s["v"], s["i"] = _decay(s["v"], s["i"], s["v_leak"], s["tau_mem"], s["tau_syn"], 1.0, dt)
            s["i"] = s["i"] + arrive[p.name][step]
            if p.kind == "lif":
                held = step <= s["until"]
                s["v"] = np.where(held, s["v_reset"], s["v"])
                allowed = np.ones(p.size, bool) if p.max_spikes is None else s["count"] < p.max_spikes
                fired = (s["v"] > s["v_threshold"]) & allowed & ~held
                s["v"] = np.where(fired, s["v_reset"], s["v"])
                s["until"] = np.where(fired, step + s["refrac"], s["until"])
                s["count"] = s["count"] + fired
                spikes[p.name] += [(step, int(j)) for j in np.flatnonzero(fired)]
                emitted[p.name] = fired.astype(np.float64)
            trace[p.name][step] = s["v"]
        for src, x in emitted.items():
            if not x.any():
                continue
            for target, w, d in out_edges[src]:
                arrive[target][step + 1 + d] += x @ w
    return Result({k: np.array(v, dtype=int).reshape(-1, 2) for k, v in spikes.items()}, trace)
