"""The EventProp backward of an event-queue stage whose internal delays are all 0 (issue 17).

That backward takes another path (a spike carries its own zero-delay deliveries: one step instead of
one per projection and spike), so it is checked here against the general path (the same network with
internal delays of 1e-13 s: the same spikes, within rounding, through separate delivery events) and
against central finite differences. float64 throughout; several zero-delay projections between two
populations, refractory multi-spike neurons and single-spike ones.
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


def _network(refractory: bool) -> snncomp.ir.Network:
    rng = np.random.default_rng(3)
    net = snncomp.Network("merge")
    x = net.input("x", 4)
    kw = dict(t_refrac=1e-3, max_spikes=3) if refractory else dict(max_spikes=1)
    a = net.lif("a", 6, tau_mem=10e-3, tau_syn=5e-3, **kw)
    b = net.lif("b", 4, tau_mem=12e-3, tau_syn=4e-3, **kw)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, a, weight=rng.uniform(0.8, 2.5, (4, 6)), delay=3e-4)
    net.connect(a, a, weight=rng.normal(0.0, 0.4, (6, 6)))
    net.connect(a, b, weight=rng.uniform(0.2, 1.5, (6, 4)))
    net.connect(b, a, weight=rng.normal(0.0, 0.4, (4, 6)))
    net.connect(b, o, weight=rng.uniform(0.3, 1.5, (4, 3)), delay=2e-4)
    net.output(o)
    return net.build()


def _loss(rec: snncomp.Recording) -> jax.Array:
    total = jnp.zeros(())
    for sp in rec.spikes.values():
        fin = jnp.isfinite(sp.times)
        c = 1.0 + 0.37 * jnp.where(fin, sp.neurons, 0)
        total = total + jnp.sum(jnp.where(fin, c * jnp.sin(150.0 * jnp.where(fin, sp.times, 0.0) + 0.3 * c), 0.0))
    return total


# The refractory case covers the same path and more; the plain one runs with --runslow (suite time).
@pytest.mark.parametrize("refractory", [pytest.param(False, marks=pytest.mark.slow), True])
def test_zero_delay_backward_matches_general_path_and_finite_differences(refractory: bool) -> None:
    exe = snncomp.compile(_network(refractory), t_max=T_MAX, dtype="float64", spikes_per_neuron=4)
    internal = [k for k in exe.params["delay"] if k in ("a->a", "a->b", "b->a")]
    assert len(internal) == 3
    rng = np.random.default_rng(11)
    n_in = 8
    inputs = {
        "x": snncomp.Spikes.from_lists(
            [rng.uniform(0.0, 0.5 * T_MAX, n_in).tolist() for _ in range(4)],
            [rng.integers(0, 4, n_in).tolist() for _ in range(4)],
            dtype="float64",
        )
    }

    def loss(p: Any, times: Any) -> jax.Array:
        ins = {"x": snncomp.Spikes(times=times, neurons=inputs["x"].neurons)}
        return _loss(exe.apply(p, ins))

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    value = jax.jit(loss)
    times = jnp.asarray(inputs["x"].times)
    p0 = exe.params
    assert all(float(p0["delay"][k]) == 0.0 for k in internal)
    rec = exe.apply(p0, inputs)
    assert not np.any(np.asarray(rec.any_overflow()))
    assert int(np.sum(np.asarray(rec.spikes["a"].neurons) >= 0)) > 4 * 3  # recurrent spikes happened

    g_merged = grad(p0, times)
    p_tiny = {**p0, "delay": {k: (1e-13 if k in internal else v) for k, v in p0["delay"].items()}}
    g_general = grad(p_tiny, times)
    flat_m, _ = jax.tree.flatten(g_merged)
    flat_g, _ = jax.tree.flatten(g_general)
    for m, g in zip(flat_m, flat_g):
        m, g = np.asarray(m), np.asarray(g)
        np.testing.assert_allclose(m, g, rtol=1e-6, atol=1e-9 * max(1.0, float(np.max(np.abs(g)))))

    # Directional finite differences along weights and input times (delays stay at 0).
    dp = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=np.shape(a))), p0["weight"])
    dt = jnp.where(inputs["x"].neurons >= 0, jnp.asarray(rng.normal(size=times.shape)) * 1e-3, 0.0)

    def moved(h: float) -> jax.Array:
        p = {"weight": jax.tree.map(lambda a, d: a + h * d, p0["weight"], dp), "delay": p0["delay"]}
        return value(p, times + h * dt)

    eps = 1e-6
    fd = float(moved(eps) - moved(-eps)) / (2 * eps)
    analytic = sum(float(jnp.sum(g_merged[0]["weight"][k] * dp[k])) for k in dp)
    analytic += float(jnp.sum(jnp.where(jnp.isfinite(times), g_merged[1] * dt, 0.0)))
    assert abs(analytic - fd) <= 1e-5 * max(abs(fd), 1.0), (analytic, fd)
