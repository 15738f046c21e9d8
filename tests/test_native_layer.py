"""The layer-parallel stage's first spikes in C (``native/layer.c``, an XLA custom call) against XLA's sweep.

Both run ``_layer.py``'s schedule; in float64 they must give the same spikes (the same neurons in the
same order, times equal to rounding) and the same EventProp gradients (the backward is shared and
reads the spikes and the currents at them), on layers with several projections, delays, deliveries cut by ``t_max``,
simultaneous inputs, biases, and under the caller's own ``vmap`` over weights.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp

T_MAX = 0.03


@pytest.fixture(autouse=True)
def _x64() -> Any:
    with jax.enable_x64(True):
        yield


def _net(seed: int, *, bias: bool = False) -> snncomp.ir.Network:
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"layer{seed}")
    x = net.input("x", 8)
    y = net.input("y", 3)
    extra = {"bias": 0.4} if bias else {}
    h = net.lif("h", 40, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1, **extra)
    net.connect(x, h, weight=rng.normal(0.5, 0.8, (8, 40)), mask=rng.random((8, 40)) < 0.7)
    net.connect(y, h, weight=rng.normal(0.3, 0.5, (3, 40)), delay=1.5e-3)
    g = net.lif("g", 7, tau_mem=6e-3, tau_syn=3e-3, max_spikes=1)
    net.connect(h, g, weight=rng.normal(0.25, 0.4, (40, 7)), delay=4e-4)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(g, o, weight=rng.normal(0.6, 0.5, (7, 3)))
    net.connect(h, o, weight=rng.normal(0.1, 0.2, (40, 3)))
    net.output(o)
    return net.build()


def _inputs(seed: int, batch: int = 6) -> dict:
    rng = np.random.default_rng(seed + 50)
    xs = [np.round(rng.uniform(0.0, T_MAX * 1.2, 14), 4) for _ in range(batch)]  # some at or after t_max
    xs[0][:4] = 2e-3  # simultaneous deliveries
    return {
        "x": snncomp.Spikes.from_lists(
            [t.tolist() for t in xs], [rng.integers(0, 8, 14).tolist() for _ in range(batch)], dtype="float64"
        ),
        "y": snncomp.Spikes.from_lists(
            [rng.uniform(0.0, T_MAX, 3).tolist() for _ in range(batch)], [[0, 1, 2]] * batch, dtype="float64"
        ),
    }


def _both(net: snncomp.ir.Network, dtype: str = "float64") -> tuple[Any, Any]:
    native = snncomp.compile(net, t_max=T_MAX, dtype=dtype)
    vectorized = snncomp.compile(net, t_max=T_MAX, dtype=dtype, event_loop="vectorized")
    return native, vectorized


def _compare(a: snncomp.Recording, b: snncomp.Recording, tol: float) -> int:
    spikes = 0
    for name in b.spikes:
        ta, tb = np.asarray(a.spikes[name].times), np.asarray(b.spikes[name].times)
        np.testing.assert_array_equal(np.asarray(a.spikes[name].neurons), np.asarray(b.spikes[name].neurons), name)
        np.testing.assert_array_equal(np.isfinite(ta), np.isfinite(tb), name)
        fin = np.isfinite(tb)
        spikes += int(fin.sum())
        if fin.any():
            assert np.max(np.abs(ta[fin] - tb[fin])) <= tol, name
    return spikes


def test_every_layer_runs_in_c() -> None:
    from snncomp.targets.jax_event import _native

    built, running = _native._jaxlib_versions()
    assert built == running  # pip install built the handlers against the jaxlib that runs
    native, vectorized = _both(_net(0))
    report = str(native.report())
    for pop in ("h", "g", "o"):
        assert f"{pop} first spikes: native (C)" in report
        assert f"{pop} first spikes: vectorized: event_loop='vectorized'" in str(vectorized.report())


@pytest.mark.parametrize(("seed", "bias"), [(0, False), (1, True), (2, False)])
def test_native_layers_record_the_vectorized_spikes(seed: int, bias: bool) -> None:
    native, vectorized = _both(_net(seed, bias=bias))
    params = native.params
    if bias:  # run-time biases (the start state at t = 0) differ per population
        rng = np.random.default_rng(seed)
        params = dict(params) | {
            "bias": {k: jnp.asarray(rng.uniform(0.0, 0.7, v.shape)) for k, v in params["bias"].items()}
        }
    inputs = _inputs(seed)
    spikes = _compare(native.apply(params, inputs), vectorized.apply(params, inputs), tol=1e-15)
    assert spikes > 60  # the comparison saw real spikes in every layer


def test_float32_programs() -> None:
    with jax.enable_x64(False):
        native, vectorized = _both(_net(3), dtype="float32")
        inputs = _inputs(3)
        for name in ("x", "y"):
            inputs[name] = snncomp.Spikes(times=inputs[name].times.astype(np.float32), neurons=inputs[name].neurons)
        a, b = native.run(inputs), vectorized.run(inputs)
        assert a.spikes["h"].times.dtype == np.float32
        assert _compare(a, b, tol=2e-7) > 60


def test_gradients_match() -> None:
    native, vectorized = _both(_net(4, bias=True))
    inputs = _inputs(4)

    def grad(exe: Any) -> Any:
        def f(p: Any) -> Any:
            t = exe.apply(p, inputs).spikes["o"].to_first_spike_times(3)
            return jnp.sum(jnp.where(jnp.isfinite(t), jnp.sin(300.0 * t), 0.0))

        return jax.grad(f)(exe.params)

    g_n, g_v = grad(native), grad(vectorized)
    for kind in ("weight", "delay", "bias"):
        for key in g_v[kind]:
            assert np.any(np.asarray(g_v[kind][key]) != 0.0), (kind, key)
            np.testing.assert_allclose(np.asarray(g_n[kind][key]), np.asarray(g_v[kind][key]), rtol=1e-9, atol=1e-13)


def test_weights_mapped_by_the_caller() -> None:
    """A vmap over weights and one over samples: each sample reads its own row of every operand."""
    native, vectorized = _both(_net(5))
    inputs = _inputs(5, batch=3)
    scales = jnp.asarray([0.6, 1.0, 1.5])

    def run(exe: Any) -> np.ndarray:
        def one(s: Any) -> Any:
            p = dict(exe.params)
            p["weight"] = dict(p["weight"]) | {"x->h": exe.params["weight"]["x->h"] * s}
            return exe.apply(p, inputs).spikes["h"].times

        return np.asarray(jax.jit(jax.vmap(one))(scales))

    t_n, t_v = run(native), run(vectorized)
    assert t_n.shape == (3, 3, 40)
    np.testing.assert_array_equal(np.isfinite(t_n), np.isfinite(t_v))
    fin = np.isfinite(t_v)
    assert np.max(np.abs(t_n[fin] - t_v[fin])) <= 1e-15
    assert not np.array_equal(t_v[0], t_v[2])  # the scales matter


def test_what_stays_in_xla() -> None:
    net = snncomp.Network("ratio3")
    x = net.input("x", 3)
    a = net.lif("a", 5, tau_mem=12e-3, tau_syn=4e-3, max_spikes=1)
    b = net.lif("b", 4, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, a, weight=np.ones((3, 5)))
    net.connect(a, b, weight=np.ones((5, 4)))
    report = str(snncomp.compile(net.build(), t_max=T_MAX).report())
    assert "a first spikes: vectorized: not a LIF with tau_mem = 2 tau_syn" in report
    assert "b first spikes: native (C)" in report
    # autodiff differentiates the forward pass itself, which the custom call has no derivative for
    auto = snncomp.compile(net.build(), t_max=T_MAX, adjoint="autodiff")
    assert "b first spikes: vectorized" in str(auto.report())
    g = jax.grad(lambda p: jnp.sum(auto.apply(p, _ones()).spikes["b"].times[..., 0]))(auto.params)
    assert np.all(np.isfinite(np.asarray(g["weight"]["a->b"])))


def _ones() -> dict:
    return {"x": snncomp.Spikes.from_lists([[1e-3, 2e-3, 3e-3]], [[0, 1, 2]], dtype="float64")}


def test_a_library_without_the_ffi_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built without jaxlib's FFI header (or against another jaxlib), the layers run in XLA; the report says why."""
    from snncomp.targets.jax_event import _native

    register = _native._ffi_targets.__wrapped__  # the uncached registration
    monkeypatch.setattr(_native, "_ffi_targets", lambda: False)
    monkeypatch.setattr(_native, "_jaxlib_versions", lambda: ("", "0.10.2"))
    native, vectorized = _both(_net(6))
    assert "h first spikes: vectorized: the compiled kernels were built without XLA's FFI header" in str(
        native.report()
    )
    # built against another jaxlib: XLA's FFI version handshake might fail, so the handlers are not used
    monkeypatch.setattr(_native, "_jaxlib_versions", lambda: ("0.9.0", "0.10.2"))
    assert register() is False  # the registration itself refuses them
    assert "built for jaxlib 0.9.0, not the running 0.10.2 (run pip install -e . again)" in str(
        snncomp.compile(_net(6), t_max=T_MAX).report()
    )
    inputs = _inputs(6, batch=2)
    _compare(native.run(inputs), vectorized.run(inputs), tol=0.0)


@pytest.mark.parametrize("distinct", [25, 100])
def test_simultaneous_spikes_keep_the_index_order(distinct: int) -> None:
    """Spikes at one time are ordered by neuron index, by ranks (100 neurons) and by the merge sort that
    takes over above 256 spikes (400)."""
    rng = np.random.default_rng(7)
    net = snncomp.Network("ties")
    x = net.input("x", 8)
    h = net.lif("h", 4 * distinct, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    # every weight column four times: groups of neurons spiking at the same time
    net.connect(x, h, weight=np.tile(rng.normal(1.2, 0.6, (8, distinct)), (1, 4)))
    native, vectorized = _both(net.build())
    inputs = {"x": snncomp.Spikes.from_lists([rng.uniform(0.0, 0.02, 12).tolist()], [rng.integers(0, 8, 12).tolist()])}
    rec = native.run(inputs)
    assert int(np.isfinite(np.asarray(rec.spikes["h"].times)).sum()) > (256 if distinct == 100 else 60)
    _compare(rec, vectorized.run(inputs), tol=1e-15)
