"""The headline property: on an ideal chip the emulator computes what the JAX target computes.

For random networks that place and route (feed-forward and recurrent ``lif`` networks without delays),
the mock run with ``MockConfig.ideal()`` is compared with the JAX target run on
``dequantized_network`` (the same network with the chip's quantized weights and counter-realised
refractory periods), both in float64, on the same inputs.

Why the bound is one tick. Input spikes are placed on the 8 ns FPGA grid (in model units, multiples of
``8e-9 s * speedup``), so the chip releases them exactly when the JAX target delivers them. On-chip
spikes are delivered at their exact times in both. The only rounding is the FPGA timestamp of a
recorded spike, ``floor(t / tick) * tick``, so a mock spike time lies in ``(t_jax - tick, t_jax]`` up to
the solvers' rounding (``TOL``, far below a tick). Spike counts per neuron must be identical.

Excluded samples, counted and required to stay a minority: those where the emulator saw a membrane
maximum within ``MARGIN`` (relative to the threshold distance) of threshold -- a grazing crossing, where
rounding decides whether a spike happens and the emulator's cubic estimate of such a maximum is only
accurate to about ``1e-6`` --, where the chip's event-rate limit delayed or dropped an event (two events
on one PADI bus within 8 ns; the JAX model has no such limit), or where a buffer overflowed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import networks

import snncomp
from snncomp.ir import Network
from snncomp.targets.bss2 import dequantized_network
from snncomp.targets.bss2.mock import MockConfig, compile_mock

BATCH = 8
EVENTS = 10
T_IN = 8e-3
T_MAX = 12e-3
SPIKES_PER_NEURON = 6
MARGIN = 1e-5
TOL = 1e-6  # in ticks
_EXAMPLES = max(4, settings().max_examples // 6)
_SLOW_EXAMPLES = 40


def _chip_ready(net: Network) -> Network:
    """Per-neuron spike budgets above 1 have no chip counterpart (the readout applies them): unbounded instead."""
    nodes = tuple(
        n.model_copy(update={"max_spikes": None}) if n.kind == "lif" and (n.max_spikes or 1) > 1 else n
        for n in net.nodes
    )
    return net.replace(nodes=nodes)


@st.composite
def cases(draw: Any, *, feedforward: bool) -> tuple[Network, dict[str, tuple[np.ndarray, np.ndarray]], float]:
    net = draw(
        networks(
            max_size=8,
            max_inputs=2,
            max_neuron_pops=3,
            feedforward=feedforward,
            kinds=("lif",),
            delays=False,
            dtypes=("float64",),
        )
    )
    gain = draw(st.floats(3.0, 8.0))
    net = _chip_ready(net.replace(edges=tuple(e.model_copy(update={"weight": e.weight * gain}) for e in net.edges)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    tick = 8e-9 * 1000.0  # one FPGA clock cycle in model seconds at the default speedup
    n_ticks = int(T_IN / tick)
    inputs = {}
    used = [set() for _ in range(BATCH)]
    for node in net.nodes:
        if node.kind != "input":
            continue
        t = np.full((BATCH, EVENTS), np.inf)
        n = np.full((BATCH, EVENTS), -1)
        for b in range(BATCH):
            real = int(rng.integers(EVENTS // 2, EVENTS + 1))
            # Distinct release cycles per sample: two inputs in one cycle would queue on the FPGA link.
            free = np.setdiff1d(np.arange(n_ticks), np.fromiter(used[b], int, len(used[b])))
            k = np.sort(rng.choice(free, real, replace=False))
            used[b].update(k.tolist())
            t[b, :real] = k * tick
            n[b, :real] = rng.integers(0, node.size, real)
        inputs[node.name] = (t, n)
    return net, inputs, tick


def _compare(net: Network, inputs: dict, tick: float, tally: Counter) -> None:
    with jax.enable_x64(True):
        spikes = {k: snncomp.Spikes(times=t, neurons=n.astype(np.int32)) for k, (t, n) in inputs.items()}
        mock = compile_mock(
            net, t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, dtype="float64", mock=MockConfig.ideal()
        )
        rec_m, health = mock.run_with_health(spikes)
        ref = snncomp.compile(
            dequantized_network(mock.compile_result), t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, dtype="float64"
        )
        rec_j = ref.run(spikes)
    for b in range(BATCH):
        tally["samples"] += 1
        reasons = []
        if float(np.asarray(health.grazing)[b]) < MARGIN:
            reasons.append("grazing")
        if int(np.asarray(health.delayed)[b]) or int(np.asarray(health.dropped)[b]):
            reasons.append("rate limit")
        if any(bool(np.asarray(v)[b]) for d in (rec_m.overflow, rec_j.overflow) for v in d.values()):
            reasons.append("overflow")
        assert not bool(np.asarray(health.iteration_limit)[b])
        if reasons:
            tally["excluded"] += 1
            for r in reasons:
                tally[f"excluded: {r}"] += 1
            continue
        for pop in rec_j.spikes:
            tj, nj = np.asarray(rec_j.spikes[pop].times)[b], np.asarray(rec_j.spikes[pop].neurons)[b]
            tm, nm = np.asarray(rec_m.spikes[pop].times)[b], np.asarray(rec_m.spikes[pop].neurons)[b]
            got = list(zip(tm[nm >= 0], nm[nm >= 0]))
            note(f"sample {b} {pop}: jax {list(zip(tj[nj >= 0], nj[nj >= 0]))} mock {got}")
            assert rec_m.spikes[pop].times.shape == rec_j.spikes[pop].times.shape, pop
            assert np.all(np.diff(tm[nm >= 0]) >= 0), "mock spikes must be sorted"
            for j in sorted(set(nj[nj >= 0].tolist()) | set(nm[nm >= 0].tolist())):
                a = np.sort(tj[nj == j])
                m = np.sort(tm[nm == j])
                assert len(a) == len(m), (pop, b, j, a, m)
                lag = (a - m) / tick  # in ticks: the timestamp floors, so 0 <= lag < 1
                assert np.all(lag > -TOL) and np.all(lag < 1 + TOL), (pop, b, j, lag)
                tally["spikes"] += len(a)
                if len(a):
                    tally["max_lag_ticks"] = max(tally["max_lag_ticks"], float(lag.max()))
        tally["compared"] += 1


def _run_property(feedforward: bool, examples: int = _EXAMPLES) -> Counter:
    tally: Counter = Counter()

    @settings(max_examples=examples, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(feedforward=feedforward))
    def check(case: tuple) -> None:
        _compare(*case, tally)

    check()
    return tally


def test_feedforward_mock_equals_jax_target() -> None:
    tally = _run_property(feedforward=True)
    print(f"feed-forward mock vs jax: {dict(tally)}")
    assert tally["compared"] >= 0.75 * tally["samples"], tally
    assert tally["spikes"] > 0, tally


def test_recurrent_mock_equals_jax_target() -> None:
    tally = _run_property(feedforward=False)
    print(f"recurrent mock vs jax: {dict(tally)}")
    assert tally["compared"] >= 0.75 * tally["samples"], tally
    assert tally["spikes"] > 0, tally


@pytest.mark.slow
@pytest.mark.parametrize("feedforward", [True, False])
def test_mock_equals_jax_target_thoroughly(feedforward: bool) -> None:
    tally = _run_property(feedforward=feedforward, examples=_SLOW_EXAMPLES)
    print(f"{'feed-forward' if feedforward else 'recurrent'} mock vs jax ({_SLOW_EXAMPLES} networks): {dict(tally)}")
    assert tally["compared"] >= 0.75 * tally["samples"], tally
