"""The jax target against an independent grid integrator, and its two schedules against each other.

Random networks come from ``tests/strategies.py``; every example has a batch of
random input spike trains. Comparisons run in float64.

Grid bound: the reference (``tests/sim_reference.py``) finds a crossing by
linear interpolation on a grid of ``dt = 1e-3 * min(tau_syn, tau_mem)`` and
adds events inside a step exactly at the next grid point, so a spike time can
be off by ``O(dt)``; an error can travel downstream (a late input makes a late
spike), so the bound is ``TOL_STEPS * dt`` per spike. Excluded samples: those
whose reference run saw a membrane peak within ``MARGIN`` of threshold
(grazing: a grid cannot tell whether it crossed), a crossing with a slope below
``MIN_SLOPE`` (ill-conditioned time), a spike within ``2 dt`` of ``t_max``, or a
buffer overflow. The exclusions are counted and must stay a minority.
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
from snncomp.ir import Network

BATCH = 4
EVENTS = 12
T_IN = 8e-3
T_MAX = 12e-3
SPIKES_PER_NEURON = 6
TOL_STEPS = 2.0
MARGIN = 1e-5

_EXAMPLES = max(6, settings().max_examples // 3)


@st.composite
def cases(draw: Any, *, feedforward: bool) -> tuple[Network, dict[str, tuple[np.ndarray, np.ndarray]]]:
    net = draw(networks(max_size=8, max_inputs=2, max_neuron_pops=3, feedforward=feedforward, dtypes=("float64",)))
    # Scale the weights up so that most samples spike (the strategy's weights are N(0, 1)).
    gain = draw(st.floats(2.0, 6.0))
    net = net.replace(edges=tuple(e.model_copy(update={"weight": e.weight * gain}) for e in net.edges))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
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


def _simulate(net: Network, inputs: dict, **options: Any) -> tuple[snncomp.Executable, snncomp.Recording]:
    exe = snncomp.compile(net, t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, **options)
    rec = exe.run({k: snncomp.Spikes(times=t, neurons=n) for k, (t, n) in inputs.items()})
    return exe, rec


def _compare_with_reference(net: Network, inputs: dict, tally: Counter) -> None:
    with jax.enable_x64(True):
        exe, rec = _simulate(net, inputs)
        compiled = exe.network
        lif = [n for n in compiled.nodes if n.kind != "input"]
        if not lif:  # canonicalize removed every population (nothing reaches an output)
            tally["empty networks"] += 1
            return
        dt = 1e-3 * min(float(np.min(np.r_[n.tau_syn, n.tau_mem])) for n in lif)
        buffers = exe.report().buffers
        ref = simulate(compiled, inputs, T_MAX, dt, buffers=buffers, margin=MARGIN)
    for b in range(BATCH):
        tally["samples"] += 1
        if ref.grazing[b] or any(bool(np.asarray(v)[b]) for v in rec.overflow.values()):
            tally["excluded"] += 1
            continue
        if any(ref.overflow[p][b] for p in ref.overflow):
            tally["excluded"] += 1
            continue
        for pop, sp in rec.spikes.items():
            t = np.asarray(sp.times)[b]
            n = np.asarray(sp.neurons)[b]
            got = sorted(zip(t[n >= 0].tolist(), n[n >= 0].tolist()))
            want = sorted(ref.spikes[pop][b])
            note(f"sample {b} population {pop}: simulator {got} reference {want}")
            assert len(got) == len(want), (pop, b, got, want)
            # Match spikes per neuron in time order (the global order may differ by less than the bound).
            for j in set(n[n >= 0].tolist()):
                tg = sorted(tt for tt, nn in got if nn == j)
                tw = sorted(tt for tt, nn in want if nn == j)
                assert len(tg) == len(tw), (pop, b, j, tg, tw)
                err = np.max(np.abs(np.array(tg) - np.array(tw)))
                assert err <= TOL_STEPS * dt, (pop, b, j, err / dt, tg, tw)
                tally["spikes"] += len(tg)
                tally["max_err_steps"] = max(tally["max_err_steps"], float(err / dt))
        tally["compared"] += 1


def _run_reference_property(feedforward: bool) -> Counter:
    tally: Counter = Counter()

    @settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(feedforward=feedforward))
    def check(case: tuple) -> None:
        _compare_with_reference(*case, tally)

    check()
    return tally


def test_feedforward_networks_match_reference() -> None:
    tally = _run_reference_property(feedforward=True)
    print(f"feed-forward vs reference: {dict(tally)}")
    assert tally["compared"] >= tally["samples"] // 2, tally
    assert tally["spikes"] > 0, tally


def test_recurrent_networks_match_reference() -> None:
    tally = _run_reference_property(feedforward=False)
    print(f"recurrent vs reference: {dict(tally)}")
    assert tally["compared"] >= tally["samples"] // 2, tally
    assert tally["spikes"] > 0, tally


def _single_spike(net: Network) -> Network:
    nodes = tuple(n.model_copy(update={"max_spikes": 1}) if n.kind == "lif" else n for n in net.nodes)
    return net.replace(nodes=nodes)


@settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases(feedforward=True))
def test_layer_parallel_and_event_queue_agree(case: tuple) -> None:
    net, inputs = case
    net = _single_spike(net)
    with jax.enable_x64(True):
        exe_a, rec_a = _simulate(net, inputs)
        _, rec_b = _simulate(net, inputs, strategy="event-queue")
        stages = {s.strategy for s in exe_a.lowered.stages}
    note(f"auto schedule: {exe_a.report().schedule}")
    assert "event-queue" not in stages
    for pop in rec_a.spikes:
        ta, na = np.asarray(rec_a.spikes[pop].times), np.asarray(rec_a.spikes[pop].neurons)
        tb, nb = np.asarray(rec_b.spikes[pop].times), np.asarray(rec_b.spikes[pop].neurons)
        assert np.array_equal(na >= 0, nb >= 0), pop
        for b in range(BATCH):
            fa = np.full(64, np.inf)
            fb = np.full(64, np.inf)
            fa[na[b][na[b] >= 0]] = ta[b][na[b] >= 0]
            fb[nb[b][nb[b] >= 0]] = tb[b][nb[b] >= 0]
            assert np.array_equal(np.isfinite(fa), np.isfinite(fb)), (pop, b)
            fin = np.isfinite(fa)
            # Both run in float64 but in a different order of operations; a crossing with a small
            # slope turns rounding differences into larger time differences, hence 1e-7, not 1e-15.
            err = np.max(np.abs(fa[fin] - fb[fin]) / np.maximum(fa[fin], 1e-6), initial=0.0)
            note(f"{pop} sample {b}: max relative difference {err:.2e}")
            assert err <= 1e-7, (pop, b, err)
