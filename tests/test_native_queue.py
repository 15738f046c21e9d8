"""The event-queue loop in C (``event_loop='native'``) against the vectorized ``lax.while_loop`` (issue 17).

The two implement one schedule with different bookkeeping (the C loop keeps each neuron's crossing between
events in a per-population frame and advances only the frames' decay factors), so in float64 they must
record the same spikes: the same neurons in the same order, times and currents equal to rounding, the
same overflow flags, and the same EventProp gradients (the backward is shared; it reads the logs).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.errors import TargetError
from snncomp.targets.jax_event import _native

T_MAX = 0.04


@pytest.fixture(autouse=True)
def _x64() -> Any:
    with jax.enable_x64(True):
        yield


def _net(seed: int, *, refrac: float, delay: float, two: bool = True, max_spikes: int | None = 6) -> snncomp.ir.Network:
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"native{seed}")
    x = net.input("x", 12)
    limit = {} if max_spikes is None else {"max_spikes": max_spikes}  # None: unbounded, the buffer may overflow
    a = net.lif("a", 30, tau_mem=10e-3, tau_syn=5e-3, t_refrac=refrac, **limit)
    net.connect(x, a, weight=rng.normal(0.6, 0.5, (12, 30)), mask=rng.random((12, 30)) < 0.6)
    # a sparse recurrent projection (the C loop touches only its nonzeros) and a dense one
    net.connect(a, a, weight=rng.normal(0.0, 0.5, (30, 30)), mask=rng.random((30, 30)) < 0.15, delay=delay)
    if two:
        b = net.lif("b", 9, tau_mem=16e-3, tau_syn=8e-3, t_refrac=refrac / 2, max_spikes=4)
        net.connect(a, b, weight=rng.normal(0.4, 0.4, (30, 9)))
        net.connect(b, a, weight=rng.normal(-0.1, 0.3, (9, 30)), delay=2 * delay)
    o = net.lif("o", 4, tau_mem=10e-3, tau_syn=5e-3, max_spikes=5)
    net.connect(a, o, weight=rng.normal(0.3, 0.3, (30, 4)), delay=delay / 3)
    net.output(o)
    return net.build()


def _inputs(seed: int, batch: int = 4, n: int = 40) -> dict:
    rng = np.random.default_rng(seed + 100)
    return {
        "x": snncomp.Spikes.from_lists(
            [rng.uniform(0.0, T_MAX, n).tolist() for _ in range(batch)],
            [rng.integers(0, 12, n).tolist() for _ in range(batch)],
            dtype="float64",
        )
    }


def _both(net: snncomp.ir.Network, **options: Any) -> tuple[Any, Any]:
    opts = dict(t_max=T_MAX, dtype="float64", spikes_per_neuron=6) | options
    native = snncomp.compile(net, event_loop="native", **opts)
    vectorized = snncomp.compile(net, event_loop="vectorized", **opts)
    return native, vectorized


def _same_spikes(a: snncomp.Recording, b: snncomp.Recording, tol: float = 1e-15) -> float:
    worst = 0.0
    for name in b.spikes:
        ta, tb = np.asarray(a.spikes[name].times), np.asarray(b.spikes[name].times)
        np.testing.assert_array_equal(np.asarray(a.spikes[name].neurons), np.asarray(b.spikes[name].neurons), name)
        np.testing.assert_array_equal(np.isfinite(ta), np.isfinite(tb), name)
        np.testing.assert_array_equal(np.asarray(a.overflow[name]), np.asarray(b.overflow[name]), name)
        fin = np.isfinite(tb)
        if fin.any():
            worst = max(worst, float(np.max(np.abs(ta[fin] - tb[fin]))))
    assert worst <= tol, worst
    return worst


def test_the_native_loop_is_built() -> None:
    # pip install compiles it (setup.py); without it every stage would quietly run the slower loop
    assert _native.available()


def test_a_library_of_another_layout_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A library left by an older checkout (structures of another size) would be misread: it is not loaded."""
    assert _native._library.__wrapped__() is not None
    monkeypatch.setattr(_native, "_layout", lambda: 0)
    assert _native._library.__wrapped__() is None


@pytest.mark.parametrize(
    ("seed", "refrac", "delay", "bias"),
    [(0, 2e-3, 1e-3, False), (1, 0.0, 0.0, False), (2, 1e-3, 0.0, True), (3, 0.0, 5e-4, True)],
)
def test_native_loop_records_the_vectorized_loops_spikes(seed: int, refrac: float, delay: float, bias: bool) -> None:
    net = _net(seed, refrac=refrac, delay=delay)
    native, vectorized = _both(net)
    assert "event loop: native (C)" in str(native.report())
    assert "event loop: vectorized" in str(vectorized.report())
    params = native.params
    if bias:  # a bias shifts every threshold and lets neurons fire before any input arrives
        rng = np.random.default_rng(seed)
        params = dict(params) | {
            "bias": {k: jnp.asarray(rng.uniform(0.0, 0.6, v.shape)) for k, v in params["bias"].items()}
        }
    inputs = _inputs(seed)
    rec_n, rec_v = native.apply(params, inputs), vectorized.apply(params, inputs)
    assert int(np.sum(np.asarray(rec_v.spikes["a"].count()))) > 20  # the network is busy
    _same_spikes(rec_n, rec_v, tol=1e-15)


def test_overflow_stops_both_loops_at_the_same_spike() -> None:
    native, vectorized = _both(_net(4, refrac=0.0, delay=2e-4, max_spikes=None), spikes_per_neuron=2)
    inputs = _inputs(4, n=100)
    rec_n, rec_v = native.run(inputs, on_overflow="flag"), vectorized.run(inputs, on_overflow="flag")
    assert np.any(np.asarray(rec_v.overflow["a"]))
    _same_spikes(rec_n, rec_v)


def test_early_stop_and_gradients_match() -> None:
    net = _net(5, refrac=1e-3, delay=3e-4)
    native, vectorized = _both(net, early_stop="o")
    inputs = _inputs(5)
    _same_spikes(native.run(inputs, on_overflow="flag"), vectorized.run(inputs, on_overflow="flag"))

    def loss(exe: Any) -> Any:
        def f(p: Any) -> Any:
            t = exe.apply(p, inputs).spikes["o"].to_first_spike_times(4)
            return jnp.sum(jnp.where(jnp.isfinite(t), jnp.sin(300.0 * t), 0.0))

        return jax.grad(f)

    g_n, g_v = loss(native)(native.params), loss(vectorized)(vectorized.params)
    for kind in ("weight", "delay"):
        for key in g_v[kind]:
            np.testing.assert_allclose(np.asarray(g_n[kind][key]), np.asarray(g_v[kind][key]), rtol=1e-9, atol=1e-12)


def test_batched_weights_and_one_sample() -> None:
    """Weights mapped by the caller's own vmap reach the C loop per sample (a stride), not the first one."""
    native, vectorized = _both(_net(6, refrac=1e-3, delay=5e-4, two=False))
    inputs = _inputs(6, batch=1)
    key = "a->a"
    scales = jnp.asarray([0.5, 1.0, 1.7])

    def run(exe: Any) -> Any:
        def one(s: Any) -> Any:
            p = dict(exe.params)
            p["weight"] = dict(p["weight"]) | {key: exe.params["weight"][key] * s}
            return exe.apply(p, inputs).spikes["a"].times

        return np.asarray(jax.vmap(one)(scales))

    t_n, t_v = run(native), run(vectorized)
    np.testing.assert_array_equal(np.isfinite(t_n), np.isfinite(t_v))
    fin = np.isfinite(t_v)
    assert np.max(np.abs(t_n[fin] - t_v[fin])) < 1e-15
    assert not np.array_equal(t_v[0], t_v[2])  # the scales matter


def test_event_loop_option() -> None:
    # tau_mem = 3 tau_syn needs the bracketed Newton solver, which the C loop does not have
    net = snncomp.Network("ratio3")
    x = net.input("x", 3)
    a = net.lif("a", 5, tau_mem=12e-3, tau_syn=4e-3, max_spikes=3)
    net.connect(x, a, weight=np.ones((3, 5)))
    net.connect(a, a, weight=np.zeros((5, 5)), delay=1e-3)
    with pytest.raises(TargetError, match=r"event_loop='native'.*'a'.*tau_mem = 2 tau_syn"):
        snncomp.compile(net.build(), t_max=T_MAX, event_loop="native")
    assert "event loop: vectorized" in str(snncomp.compile(net.build(), t_max=T_MAX).report())
    with pytest.raises(TargetError, match="event_loop must be"):
        snncomp.compile(_net(0, refrac=0.0, delay=0.0), t_max=T_MAX, event_loop="fast")
    # a single-spike recurrent population runs in its own kernel under "auto" (tests/test_native_recurrent.py)
    single = snncomp.Network("single")
    x = single.input("x", 3)
    h = single.lif("h", 5, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    single.connect(x, h, weight=np.ones((3, 5)))
    single.connect(h, h, weight=np.full((5, 5), 0.1))
    assert "single-spike recurrent kernel" in str(snncomp.compile(single.build(), t_max=T_MAX).report())


def test_a_long_silence_moves_the_frame() -> None:
    """Inputs, then thousands of time constants of silence, then inputs again: the C loop moves its
    per-population frame (without that its decay factors underflow to 0 and the states become NaN) and
    records the vectorized loop's spikes."""
    rng = np.random.default_rng(7)
    net = snncomp.Network("silence")
    x = net.input("x", 4)
    a = net.lif("a", 8, tau_mem=1e-3, tau_syn=0.5e-3, t_refrac=0.2e-3, max_spikes=20)
    net.connect(x, a, weight=rng.uniform(0.5, 2.0, (4, 8)))
    net.connect(a, a, weight=rng.normal(0.0, 0.3, (8, 8)), delay=0.1e-3)
    t_max = 3.0  # 3,000 tau_mem
    opts = dict(t_max=t_max, dtype="float64")
    native = snncomp.compile(net.build(), event_loop="native", **opts)
    vectorized = snncomp.compile(net.build(), event_loop="vectorized", **opts)
    early = rng.uniform(0.0, 5e-3, (2, 20))
    late = rng.uniform(2.5, 2.505, (2, 20))
    times = np.concatenate([early, late], axis=1)
    neurons = rng.integers(0, 4, times.shape)
    inputs = {"x": snncomp.Spikes.from_lists(list(times), list(neurons), dtype="float64")}
    rec_n, rec_v = native.run(inputs, on_overflow="flag"), vectorized.run(inputs, on_overflow="flag")
    late_spikes = np.asarray(rec_v.spikes["a"].times) > 2.5
    assert np.all(np.sum(late_spikes & np.isfinite(np.asarray(rec_v.spikes["a"].times)), axis=-1) > 0)
    _same_spikes(rec_n, rec_v, tol=1e-12)
