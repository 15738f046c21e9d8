"""Biases, instantaneous synapses (``tau_syn = 0``) and ``if`` neurons: the jax target against the grid reference.

Random small networks from ``tests/strategies.py`` whose populations are turned
into the new kinds (``lif``/``li`` with ``tau_syn = 0``, ``if``) and given random
biases (tonic firing included, where the IR allows it); continuous random input
times; float64. The reference (``tests/sim_reference.py``) runs at two grid
steps, ``dt`` and ``dt / 4``: every spike must agree within ``TOL_STEPS`` grid
steps at both, and the largest error over all compared spikes must shrink with
the step (by at least ``SHRINK``; first order predicts 4). Samples the
reference flags as grazing at either step (see its docstring), and overflows,
are excluded; they must stay a minority.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax
import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sim_reference import simulate
from strategies import networks

import snncomp
from snncomp.ir import IFNode, LIFNode, LINode, Network

BATCH = 4
EVENTS = 12
T_IN = 8e-3
T_MAX = 12e-3
SPIKES_PER_NEURON = 6
TOL_STEPS = 4.0
SHRINK = 2.0
MARGIN = 1e-5
STEPS_PER_TAU = (250, 1000)  # the two grids: dt = min(tau) / 250 and min(tau) / 1000
EXAMPLES = 5


def _values(rng: np.random.Generator, lo: float, hi: float, size: int, per_neuron: bool) -> Any:
    return rng.uniform(lo, hi, size) if per_neuron else float(rng.uniform(lo, hi))


def _convert(node: Any, kind: str, rng: np.random.Generator, per_neuron: bool) -> Any:
    """The strategy's ``lif``/``li`` population as ``kind`` (cuba, jump or if), with a bias."""
    f = {k: getattr(node, k) for k in type(node).model_fields if k != "kind"}
    size = node.size
    if node.kind == "li":
        if kind == "jump":
            f["tau_syn"] = 0.0
        f["bias"] = _values(rng, -0.5, 1.0, size, per_neuron)
        return LINode(**f)
    gap = np.asarray(node.v_threshold) - np.asarray(node.v_leak)  # > 0
    if kind == "if":
        keep = ("name", "size", "v_threshold", "v_reset", "t_refrac", "max_spikes")
        # dv/dt = bias [1/s]: from -0.5 to 1.5 thresholds per 10 ms (tonic firing at the top).
        bias = _values(rng, -0.5, 1.5, size, per_neuron) * np.asarray(node.v_threshold) / 10e-3
        return IFNode(**{k: f[k] for k in keep}, bias=bias if np.ndim(bias) else float(bias))
    if kind == "jump":
        f["tau_syn"] = 0.0
        frac = _values(rng, -0.5, 1.5, size, per_neuron)  # rest v_leak + bias up to above threshold
    else:
        frac = _values(rng, -0.5, 0.9, size, per_neuron)  # with a current the rest must stay below threshold
    bias = frac * gap
    f["bias"] = bias if np.ndim(bias) else float(bias)
    return LIFNode(**f)


@st.composite
def cases(draw: Any, *, feedforward: bool) -> tuple[Network, dict[str, tuple[np.ndarray, np.ndarray]]]:
    net = draw(networks(max_size=6, max_inputs=2, max_neuron_pops=3, feedforward=feedforward, dtypes=("float64",)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    nodes = []
    for node in net.nodes:
        if node.kind == "input":
            nodes.append(node)
            continue
        options = ["cuba", "jump", "if"] if node.kind == "lif" else ["cuba", "jump"]
        nodes.append(_convert(node, draw(st.sampled_from(options)), rng, draw(st.booleans())))
    kinds = {n.name: n for n in nodes}
    edges = []
    for e in net.edges:
        tgt = kinds[e.target]
        # A weight is a voltage jump with instantaneous synapses; with a current it is diluted by the filter.
        jump = tgt.kind == "if" or float(np.min(np.asarray(tgt.tau_syn))) == 0.0
        gain = draw(st.floats(0.3, 1.0)) if jump else draw(st.floats(2.0, 6.0))
        edges.append(e.model_copy(update={"weight": e.weight * gain}))
    net = net.replace(nodes=tuple(nodes), edges=tuple(edges))
    inputs = {}
    for node in net.nodes:
        if node.kind != "input":
            continue
        t = rng.uniform(0.0, T_IN, (BATCH, EVENTS))
        n = rng.integers(0, node.size, (BATCH, EVENTS))
        real = rng.integers(EVENTS // 2, EVENTS + 1, BATCH)
        pad = np.arange(EVENTS)[None, :] >= real[:, None]
        inputs[node.name] = (np.where(pad, np.inf, t), np.where(pad, -1, n))
    return net, inputs


def _time_scale(net: Network) -> float:
    taus = [
        float(np.min(x))
        for n in net.nodes
        if n.kind in ("lif", "li")
        for x in (np.asarray(n.tau_mem), np.asarray(n.tau_syn))
        if float(np.min(x)) > 0
    ]
    return min(taus, default=2e-3)


def _compare(net: Network, inputs: dict, tally: Counter) -> None:
    with jax.enable_x64(True):
        exe = snncomp.compile(net, t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, dtype="float64")
        rec = exe.run({k: snncomp.Spikes(times=t, neurons=n) for k, (t, n) in inputs.items()})
    compiled = exe.network
    if not [n for n in compiled.nodes if n.kind != "input"]:
        tally["empty networks"] += 1
        return
    buffers = exe.report().buffers
    steps = [_time_scale(compiled) / k for k in STEPS_PER_TAU]
    refs = [simulate(compiled, inputs, T_MAX, dt, buffers=buffers, margin=MARGIN) for dt in steps]
    kinds = {
        n.name: n.kind if n.kind in ("input", "if") or float(np.min(np.asarray(n.tau_syn))) > 0 else "jump"
        for n in compiled.nodes
    }
    for b in range(BATCH):
        tally["samples"] += 1
        if any(r.grazing[b] or any(r.overflow[p][b] for p in r.overflow) for r in refs) or any(
            bool(np.asarray(v)[b]) for v in rec.overflow.values()
        ):
            tally["excluded"] += 1
            continue
        for pop, sp in rec.spikes.items():
            t = np.asarray(sp.times)[b]
            n = np.asarray(sp.neurons)[b]
            got = sorted(zip(t[n >= 0].tolist(), n[n >= 0].tolist()))
            for dt, ref, level in zip(steps, refs, ("coarse", "fine")):
                want = sorted(ref.spikes[pop][b])
                note(f"sample {b} population {pop} dt {dt:.3g}: simulator {got} reference {want}")
                assert len(got) == len(want), (pop, b, dt, got, want)
                for j in {nn for _, nn in got}:
                    tg = np.array(sorted(tt for tt, nn in got if nn == j))
                    tw = np.array(sorted(tt for tt, nn in want if nn == j))
                    assert len(tg) == len(tw), (pop, b, j, dt, tg, tw)
                    err = float(np.max(np.abs(tg - tw)))
                    assert err <= TOL_STEPS * dt, (pop, b, j, err / dt, tg, tw)
                    tally[f"max_err_steps_{level}"] = max(tally[f"max_err_steps_{level}"], err / dt)
                    # In units of the coarse step, so that examples with different time scales pool.
                    tally[f"max_err_{level}"] = max(tally[f"max_err_{level}"], err / steps[0])
                    if level == "fine":
                        tally["spikes"] += len(tg)
                        tally[f"spikes_{kinds[pop]}"] += len(tg)
        tally["compared"] += 1


def _run_property(feedforward: bool) -> Counter:
    tally: Counter = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(cases(feedforward=feedforward))
    def check(case: tuple) -> None:
        _compare(*case, tally)

    check()
    return tally


def _check_tally(tally: Counter) -> None:
    assert tally["compared"] >= tally["samples"] // 2, tally
    assert tally["spikes"] > 0, tally
    # First order: the largest error (in coarse steps) shrinks with the grid step: 4x finer, about 4x smaller.
    assert tally["max_err_fine"] * SHRINK <= tally["max_err_coarse"], tally


def test_biased_feedforward_networks_with_new_kinds_match_reference() -> None:
    tally = _run_property(feedforward=True)
    print(f"feed-forward (bias, tau_syn=0, if) vs reference: {dict(tally)}")
    _check_tally(tally)


def test_biased_recurrent_networks_with_new_kinds_match_reference() -> None:
    tally = _run_property(feedforward=False)
    print(f"recurrent (bias, tau_syn=0, if) vs reference: {dict(tally)}")
    _check_tally(tally)
