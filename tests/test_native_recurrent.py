"""Single-spike recurrent populations in C (``native/recurrent.c``) against the vectorized event loop.

An event-queue stage of one population whose neurons spike at most once runs in the recurrent kernel: the
layer kernel's sweep with the population's own spikes fed back, and a closed-form EventProp backward.
In float64 it must record the vectorized loop's spikes (the same neurons in the same order, times equal
to rounding, the same overflow flags) and give its EventProp gradients (the scan over the event log),
for zero-delay and delayed recurrence, masks, biases, several projections, simultaneous and late inputs,
two populations in one stage, an early stop, and under the caller's own ``vmap``; the gradients also match
finite differences.
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


def _net(seed: int, *, delay: float = 0.0, second: float | None = None, bias: bool = False, n: int = 40) -> Any:
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"rec{seed}")
    x = net.input("x", 6)
    y = net.input("y", 3)
    extra = {"bias": 0.3} if bias else {}
    h = net.lif("h", n, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1, **extra)
    net.connect(x, h, weight=rng.normal(1.2, 0.8, (6, n)), mask=rng.random((6, n)) < 0.8)
    net.connect(y, h, weight=rng.normal(0.6, 0.5, (3, n)), delay=1e-3)
    net.connect(h, h, weight=rng.normal(0.0, 0.25, (n, n)), mask=rng.random((n, n)) < 0.7, delay=delay)
    if second is not None:
        net.connect(h, h, weight=rng.normal(0.05, 0.2, (n, n)), delay=second)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(h, o, weight=rng.normal(0.4, 0.4, (n, 3)))
    net.output(o)
    return net.build()


def _inputs(seed: int, batch: int = 5) -> dict:
    rng = np.random.default_rng(seed + 30)
    xs = [np.round(rng.uniform(0.0, T_MAX * 1.1, 10), 4) for _ in range(batch)]  # a few at or after t_max
    xs[0][:3] = 2e-3  # simultaneous deliveries
    return {
        "x": snncomp.Spikes.from_lists(
            [t.tolist() for t in xs], [rng.integers(0, 6, 10).tolist() for _ in range(batch)], dtype="float64"
        ),
        "y": snncomp.Spikes.from_lists(
            [rng.uniform(0.0, T_MAX, 3).tolist() for _ in range(batch)], [[0, 1, 2]] * batch, dtype="float64"
        ),
    }


def _both(net: Any, **options: Any) -> tuple[Any, Any]:
    opts = dict(t_max=T_MAX, dtype="float64") | options
    kernel = snncomp.compile(net, **opts)
    vectorized = snncomp.compile(net, event_loop="vectorized", **opts)
    assert "single-spike recurrent kernel" in str(kernel.report())
    assert "single-spike recurrent kernel" not in str(vectorized.report())
    return kernel, vectorized


def _same_spikes(a: Any, b: Any, tol: float = 1e-13) -> None:
    for name in b.spikes:
        ta, tb = np.asarray(a.spikes[name].times), np.asarray(b.spikes[name].times)
        np.testing.assert_array_equal(np.asarray(a.spikes[name].neurons), np.asarray(b.spikes[name].neurons), name)
        np.testing.assert_array_equal(np.isfinite(ta), np.isfinite(tb), name)
        np.testing.assert_array_equal(np.asarray(a.overflow[name]), np.asarray(b.overflow[name]), name)
        fin = np.isfinite(tb)
        if fin.any():
            assert np.max(np.abs(ta[fin] - tb[fin])) <= tol, name


def _params(exe: Any, seed: int, bias: bool) -> dict:
    if not bias:
        return exe.params
    rng = np.random.default_rng(seed)
    return dict(exe.params) | {
        "bias": {k: jnp.asarray(rng.uniform(0.0, 0.5, v.shape)) for k, v in exe.params["bias"].items()}
    }


def _loss(exe: Any, inputs: dict) -> Any:
    def f(p: Any) -> Any:
        rec = exe.apply(p, inputs)
        t_o = rec.spikes["o"].to_first_spike_times(3)
        t_h = rec.spikes["h"].to_first_spike_times(rec.spikes["h"].times.shape[-1])
        # reads the hidden spikes directly too, so their cotangents are not only the output layer's
        return jnp.sum(jnp.where(jnp.isfinite(t_o), jnp.sin(300.0 * t_o), 0.0)) + 0.3 * jnp.sum(
            jnp.where(jnp.isfinite(t_h), jnp.cos(200.0 * t_h), 0.0)
        )

    return f


@pytest.mark.parametrize(
    ("seed", "delay", "second", "bias"),
    [
        (0, 0.0, None, False),
        pytest.param(1, 1e-3, None, True, marks=pytest.mark.slow),
        pytest.param(2, 0.0, 7e-4, False, marks=pytest.mark.slow),
        (3, 5e-4, 0.0, True),  # a delayed and a zero-delay projection, biases
    ],
)
def test_spikes_and_gradients_equal_the_vectorized_loops(
    seed: int, delay: float, second: float | None, bias: bool
) -> None:
    kernel, vectorized = _both(_net(seed, delay=delay, second=second, bias=bias))
    params, inputs = _params(kernel, seed, bias), _inputs(seed)
    rec_k, rec_v = kernel.apply(params, inputs), vectorized.apply(params, inputs)
    assert int(np.sum(np.asarray(rec_v.spikes["h"].count()))) > 40  # the population is busy
    _same_spikes(rec_k, rec_v)
    g_k, g_v = jax.grad(_loss(kernel, inputs))(params), jax.grad(_loss(vectorized, inputs))(params)
    for group in g_v:
        for key in g_v[group]:
            a, b = np.asarray(g_k[group][key]), np.asarray(g_v[group][key])
            assert np.any(b != 0.0), (group, key)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * np.max(np.abs(b)), err_msg=f"{group} {key}")


def test_gradients_match_finite_differences() -> None:
    net = _net(4, delay=4e-4, bias=True)
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    inputs = _inputs(4, batch=3)
    params = _params(exe, 4, True)
    f = _loss(exe, inputs)
    grad = jax.grad(f)(params)
    rng = np.random.default_rng(0)
    checked = 0
    for group, key, shape in [("weight", "h->h", (40, 40)), ("weight", "x->h", (6, 40)), ("bias", "h", (40,))]:
        g = np.asarray(grad[group][key])
        flat = np.argsort(-np.abs(g).ravel())[:3].tolist() + rng.integers(0, g.size, 2).tolist()
        for f_idx in flat:
            idx = np.unravel_index(f_idx, shape)
            eps = 1e-7

            def at(d: float, idx: Any = idx, group: str = group, key: str = key) -> float:
                p = jax.tree_util.tree_map(lambda x: x, params)
                p[group] = dict(p[group]) | {key: p[group][key].at[idx].add(d)}
                return float(f(p))

            fd = (at(eps) - at(-eps)) / (2 * eps)
            assert abs(fd - g[idx]) <= 1e-5 * max(1.0, abs(fd)), (group, key, idx, fd, g[idx])
            checked += 1
    assert checked == 15


def test_delay_and_input_time_gradients_match_finite_differences() -> None:
    exe = snncomp.compile(_net(5, delay=6e-4), t_max=T_MAX, dtype="float64")
    inputs = _inputs(5, batch=2)

    def f(delays: Any, x_times: Any) -> Any:
        p = dict(exe.params) | {"delay": delays}
        ins = dict(inputs) | {"x": snncomp.Spikes(times=x_times, neurons=inputs["x"].neurons)}
        return _loss(exe, ins)(p)

    d0, x0 = exe.params["delay"], inputs["x"].times
    g_d, g_x = jax.grad(f, argnums=(0, 1))(d0, x0)
    eps = 1e-8
    for key in ("h->h", "y->h"):
        fd = (f(d0 | {key: d0[key] + eps}, x0) - f(d0 | {key: d0[key] - eps}, x0)) / (2 * eps)
        assert abs(float(fd) - float(g_d[key])) <= 1e-4 * max(1.0, abs(float(fd))), key
        assert float(g_d[key]) != 0.0
    x_np = np.asarray(x0)
    inside = [(1, int(k)) for k in np.flatnonzero((x_np[1] > 1e-3) & (x_np[1] < T_MAX - 1e-3))]
    assert len(inside) >= 3
    assert any(float(g_x[idx]) != 0.0 for idx in inside)
    for idx in inside[:3]:
        up, down = x0.at[idx].add(eps), x0.at[idx].add(-eps)
        fd = (f(d0, up) - f(d0, down)) / (2 * eps)
        assert abs(float(fd) - float(g_x[idx])) <= 1e-4 * max(1.0, abs(float(fd))), idx


def test_a_feed_forward_population_forced_into_the_event_loop() -> None:
    """``strategy=event-queue`` puts a layer without recurrence into an event-queue stage: no recurrent rows."""
    net = snncomp.Network("ff")
    rng = np.random.default_rng(9)
    x = net.input("x", 6)
    h = net.lif("h", 30, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=rng.normal(1.5, 0.8, (6, 30)))
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(h, o, weight=rng.normal(0.4, 0.4, (30, 3)))
    kernel, vectorized = _both(net.build(), strategy="event-queue")
    inputs = {"x": _inputs(9)["x"], "y": _inputs(9)["y"]}
    inputs.pop("y")
    _same_spikes(kernel.apply(kernel.params, inputs), vectorized.apply(vectorized.params, inputs))
    g_k = jax.grad(lambda p: jnp.sum(jnp.nan_to_num(kernel.apply(p, inputs).spikes["o"].times, posinf=0.0)))(
        kernel.params
    )
    g_v = jax.grad(lambda p: jnp.sum(jnp.nan_to_num(vectorized.apply(p, inputs).spikes["o"].times, posinf=0.0)))(
        vectorized.params
    )
    for key in g_v["weight"]:
        np.testing.assert_allclose(np.asarray(g_k["weight"][key]), np.asarray(g_v["weight"][key]), rtol=1e-9)


def test_float32_and_the_callers_vmap() -> None:
    net = _net(7, delay=3e-4)
    inputs = _inputs(7, batch=1)
    k64 = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    k32 = snncomp.compile(net, t_max=T_MAX, dtype="float32")
    t64 = np.asarray(k64.apply(k64.params, inputs).spikes["h"].times)
    t32 = np.asarray(k32.apply(k32.params, inputs).spikes["h"].times)
    fin = np.isfinite(t64)
    assert np.array_equal(fin, np.isfinite(t32)) and fin.sum() > 10
    assert np.max(np.abs(t32[fin] - t64[fin])) < 1e-7
    # weights mapped by the caller's own vmap reach the kernel per sample, not the first one's
    vectorized = snncomp.compile(net, t_max=T_MAX, dtype="float64", event_loop="vectorized")
    scales = jnp.asarray([0.5, 1.0, 1.6])

    def run(exe: Any) -> Any:
        def one(s: Any) -> Any:
            p = dict(exe.params)
            p["weight"] = dict(p["weight"]) | {"h->h": exe.params["weight"]["h->h"] * s}
            return exe.apply(p, inputs).spikes["h"].times

        return np.asarray(jax.vmap(one)(scales))

    a, b = run(k64), run(vectorized)
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
    fin = np.isfinite(b)
    assert np.max(np.abs(a[fin] - b[fin])) < 1e-13
    assert not np.array_equal(b[0], b[2])


def test_the_handlers_are_built_for_xla_s_thread_pool() -> None:
    """setup.py finds the pool API in jaxlib's FFI header (it is there in the jaxlib installed here)."""
    import importlib.util
    import os

    from snncomp.targets.jax_event import _native

    spec = importlib.util.find_spec("jaxlib")
    assert spec is not None and spec.submodule_search_locations
    header = os.path.join(spec.submodule_search_locations[0], "include", "xla", "ffi", "api", "c_api.h")
    with open(header) as f:
        has_pool = "XLA_FFI_ThreadPool_Schedule" in f.read()
    lib = _native._library()
    assert lib is not None
    assert lib.snncomp_ffi_pool() == int(has_pool)


def test_xla_pool_and_own_threads_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch large enough to be split: chunks on XLA's thread pool, or on threads of the handler's own."""
    net = _net(8, n=60)
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    inputs = _inputs(8, batch=24)
    f = jax.jit(lambda p: exe.apply(p, inputs).spikes["h"].times)
    pooled = np.asarray(f(exe.params))
    monkeypatch.setenv("SNNCOMP_FFI_POOL", "0")
    own = np.asarray(jax.jit(lambda p: exe.apply(p, inputs).spikes["h"].times)(exe.params))
    np.testing.assert_array_equal(pooled, own)
    assert np.isfinite(pooled).sum() > 24 * 20


def test_what_the_kernel_does_not_cover_runs_in_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    multi = snncomp.Network("multi")
    x = multi.input("x", 3)
    h = multi.lif("h", 5, tau_mem=10e-3, tau_syn=5e-3, max_spikes=2)
    multi.connect(x, h, weight=np.ones((3, 5)))
    multi.connect(h, h, weight=np.full((5, 5), 0.1))
    report = str(snncomp.compile(multi.build(), t_max=T_MAX).report())
    assert "single-spike recurrent kernel" not in report and "event loop:" in report
    monkeypatch.setenv("SNNCOMP_NATIVE", "0")
    report = str(snncomp.compile(_net(0), t_max=T_MAX).report())
    assert "event loop: vectorized: SNNCOMP_NATIVE=0" in report


def test_a_long_window_takes_the_exponentials_per_pair() -> None:
    """t_max = 1,000 tau_mem: exp(t / tau_mem) would overflow, so the backward takes one exponential per
    pair of spikes; inputs early and late, seconds of silence between them."""
    rng = np.random.default_rng(10)
    net = snncomp.Network("long")
    x = net.input("x", 4)
    h = net.lif("h", 12, tau_mem=1e-3, tau_syn=0.5e-3, max_spikes=1)
    net.connect(x, h, weight=rng.uniform(0.3, 1.5, (4, 12)))
    net.connect(h, h, weight=rng.normal(0.1, 0.4, (12, 12)), delay=1e-4)
    net.output(h)
    t_max = 1.0
    kernel, vectorized = _both(net.build(), t_max=t_max)
    times = np.concatenate([rng.uniform(0.0, 2e-3, (2, 6)), rng.uniform(0.9, 0.902, (2, 6))], axis=1)
    inputs = {"x": snncomp.Spikes.from_lists(times.tolist(), rng.integers(0, 4, (2, 12)).tolist(), dtype="float64")}
    rec_k, rec_v = kernel.apply(kernel.params, inputs), vectorized.apply(vectorized.params, inputs)
    t = np.asarray(rec_v.spikes["h"].times)
    assert np.any((t > 0.5) & np.isfinite(t)) and np.any(t < 0.5)  # spikes before and after the silence
    _same_spikes(rec_k, rec_v, tol=1e-12)

    def loss(exe: Any) -> Any:
        return lambda p: jnp.sum(
            jnp.where(jnp.isfinite(tt := exe.apply(p, inputs).spikes["h"].times), jnp.sin(3e3 * tt), 0)
        )

    g_k, g_v = jax.grad(loss(kernel))(kernel.params), jax.grad(loss(vectorized))(vectorized.params)
    for key in g_v["weight"]:
        b = np.asarray(g_v["weight"][key])
        assert np.any(b != 0.0)
        np.testing.assert_allclose(np.asarray(g_k["weight"][key]), b, rtol=1e-9, atol=1e-12 * np.max(np.abs(b)))


def test_neurons_crossing_at_the_same_instant_spike_in_index_order() -> None:
    """Eight identical neurons (same input column, no recurrent input among them) cross together: the
    kernel records them at one time in index order, as the event loop does."""
    rng = np.random.default_rng(11)
    net = snncomp.Network("ties")
    x = net.input("x", 3)
    h = net.lif("h", 12, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    w_in = rng.uniform(2.0, 3.0, (3, 12))
    w_in[:, 2:10] = w_in[:, [2]]
    w_rec = rng.normal(0.0, 0.2, (12, 12))
    w_rec[:, 2:10] = 0.0
    net.connect(x, h, weight=w_in)
    net.connect(h, h, weight=w_rec)
    net.output(h)
    kernel, vectorized = _both(net.build())
    inputs = {"x": snncomp.Spikes.from_lists([[1e-3, 2e-3, 4e-3]], [[0, 1, 2]], dtype="float64")}
    rec_k, rec_v = kernel.apply(kernel.params, inputs), vectorized.apply(vectorized.params, inputs)
    _same_spikes(rec_k, rec_v, tol=1e-15)
    t, nb = np.asarray(rec_k.spikes["h"].times)[0], np.asarray(rec_k.spikes["h"].neurons)[0]
    together = nb[np.isin(nb, np.arange(2, 10))]
    assert together.tolist() == list(range(2, 10))
    assert len(set(t[np.isin(nb, np.arange(2, 10))].tolist())) == 1


def _two_populations(seed: int) -> Any:
    """An excitatory and an inhibitory population projecting onto each other (one strongly connected
    component, so one event-queue stage of two populations), both single-spike, one tau for both."""
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"ei{seed}")
    x = net.input("x", 6)
    e = net.lif("e", 30, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1, bias=0.1)
    i = net.lif("i", 10, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1, v_threshold=0.8)
    net.connect(x, e, weight=rng.normal(1.2, 0.8, (6, 30)))
    net.connect(x, i, weight=rng.normal(0.8, 0.5, (6, 10)), delay=2e-4)
    net.connect(e, e, weight=rng.normal(0.0, 0.3, (30, 30)), mask=rng.random((30, 30)) < 0.5)
    net.connect(e, i, weight=rng.normal(0.6, 0.3, (30, 10)), delay=5e-4)
    net.connect(i, e, weight=rng.normal(-0.5, 0.2, (10, 30)))
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(e, o, weight=rng.normal(0.5, 0.4, (30, 3)))
    net.output(o)
    return net.build()


@pytest.mark.parametrize("early_stop", [None, "o"])
def test_several_populations_and_an_early_stop(early_stop: str | None) -> None:
    """Two populations in one stage; with ``early_stop`` the output joins them and its last first spike
    ends the run (what follows is not simulated, in the kernel as in the event loop)."""
    options = {} if early_stop is None else {"early_stop": early_stop}
    kernel, vectorized = _both(_two_populations(12), **options)
    inputs = {"x": _inputs(12)["x"]}
    params = _params(kernel, 12, True)
    rec_k, rec_v = kernel.apply(params, inputs), vectorized.apply(params, inputs)
    assert int(np.sum(np.asarray(rec_v.spikes["i"].count()))) > 5
    _same_spikes(rec_k, rec_v)
    if early_stop is not None:  # the stop cut spikes that the full run has
        full = snncomp.compile(_two_populations(12), t_max=T_MAX, dtype="float64").apply(params, inputs)
        assert np.sum(np.asarray(rec_k.spikes["e"].count())) < np.sum(np.asarray(full.spikes["e"].count()))

    def loss(exe: Any) -> Any:
        def f(p: Any) -> Any:
            rec = exe.apply(p, inputs)
            t_o = rec.spikes["o"].to_first_spike_times(3)
            t_e = rec.spikes["e"].to_first_spike_times(30)
            return jnp.sum(jnp.where(jnp.isfinite(t_o), jnp.sin(300.0 * t_o), 0.0)) + 0.2 * jnp.sum(
                jnp.where(jnp.isfinite(t_e), jnp.cos(200.0 * t_e), 0.0)
            )

        return f

    g_k, g_v = jax.grad(loss(kernel))(params), jax.grad(loss(vectorized))(params)
    for group in g_v:
        for key in g_v[group]:
            a, b = np.asarray(g_k[group][key]), np.asarray(g_v[group][key])
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * max(np.max(np.abs(b)), 1e-30), err_msg=key)
