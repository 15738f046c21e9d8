"""Input spikes in any order, passed as traced arguments (``jit``/``grad``), give the sorted result.

Concrete inputs are sorted on the host; traced ones are sorted inside the program. Once, the flag that
says "this buffer is not sorted" was lost where the EventProp wrapper rebuilt the input buffers, so a
traced batch in a non-time order (Yin-Yang's ``x, y, 1-x, 1-y, bias``) was simulated as if it were
sorted: plausible, wrong spike times. These tests compare against the host-sorted run, forward and
gradients, on both schedules and through the hardware-in-the-loop replay of ``bss2-mock``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.targets.bss2.mock import compile_mock

T_MAX = 0.02


def _net(recurrent: bool) -> snncomp.Network:
    rng = np.random.default_rng(0)
    net = snncomp.Network("unsorted")
    x = net.input("x", 5)
    h = net.lif("h", 12, tau_mem=1e-2, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=1e-2, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=rng.normal(3.0, 1.6, (5, 12)))
    net.connect(h, o, weight=rng.normal(0.8, 0.6, (12, 3)))
    if recurrent:
        net.connect(h, h, weight=rng.normal(0.0, 0.2, (12, 12)))
    return net


def _inputs(batch: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Yin-Yang's layout: one spike per channel, in channel order, not in time order."""
    pts = np.random.default_rng(1).uniform(0, 1, (batch, 2))
    t = np.stack([pts[:, 0], pts[:, 1], 1 - pts[:, 0], 1 - pts[:, 1], np.zeros(batch)], 1) * 1e-2
    n = np.tile(np.arange(5, dtype=np.int32), (batch, 1))
    assert np.any(np.diff(t, axis=1) < 0)  # the point of the test
    return t, n


def _first(exe: snncomp.runtime.Executable, p: object, t: jax.Array, n: jax.Array) -> jax.Array:
    rec = exe.apply(p, {"x": snncomp.Spikes(times=t, neurons=n)})
    return jnp.concatenate([rec.spikes["h"].to_first_spike_times(12), rec.spikes["o"].to_first_spike_times(3)], -1)


def _loss(exe: snncomp.runtime.Executable, p: object, t: jax.Array, n: jax.Array) -> jax.Array:
    f = _first(exe, p, t, n)
    return jnp.sum(jnp.where(jnp.isfinite(f), jnp.sin(200.0 * jnp.where(jnp.isfinite(f), f, 0.0)), 0.0))


@pytest.mark.parametrize("recurrent", [False, True], ids=["layer-parallel", "event-queue"])
def test_traced_unsorted_inputs_equal_the_host_sorted_run(recurrent: bool) -> None:
    with jax.enable_x64(True):
        exe = snncomp.compile(_net(recurrent), t_max=T_MAX, dtype="float64")
        t, n = _inputs()
        traced = jax.jit(lambda p, t, n: _first(exe, p, t, n))(exe.params, jnp.asarray(t), jnp.asarray(n))
        host = _first(exe, exe.params, t, n)  # concrete: sorted on the host
        assert int(jnp.sum(jnp.isfinite(host))) > 20
        np.testing.assert_allclose(np.asarray(traced), np.asarray(host), rtol=0, atol=1e-12)


@pytest.mark.parametrize("recurrent", [False, True], ids=["layer-parallel", "event-queue"])
def test_gradients_with_unsorted_traced_inputs_equal_the_sorted_ones(recurrent: bool) -> None:
    with jax.enable_x64(True):
        exe = snncomp.compile(_net(recurrent), t_max=T_MAX, dtype="float64")
        t, n = _inputs()
        order = np.argsort(t, axis=1, kind="stable")
        ts, ns = np.take_along_axis(t, order, 1), np.take_along_axis(n, order, 1)
        grad = jax.jit(jax.grad(lambda p, t, n: _loss(exe, p, t, n), argnums=(0, 1)))
        gp_u, gt_u = grad(exe.params, jnp.asarray(t), jnp.asarray(n))
        gp_s, gt_s = grad(exe.params, jnp.asarray(ts), jnp.asarray(ns))
        for key in gp_s["weight"]:
            assert float(jnp.max(jnp.abs(gp_s["weight"][key]))) > 0
            np.testing.assert_allclose(gp_u["weight"][key], gp_s["weight"][key], rtol=1e-9, atol=1e-12)
        # The input-time gradient follows each spike to where it was given.
        back = np.empty_like(np.asarray(gt_s))
        np.put_along_axis(back, order, np.asarray(gt_s), 1)
        np.testing.assert_allclose(np.asarray(gt_u), back, rtol=1e-9, atol=1e-12)


def test_hardware_in_the_loop_replay_with_unsorted_traced_inputs() -> None:
    """The mock's in-the-loop gradient with a traced, unsorted batch equals the sorted batch's."""
    with jax.enable_x64(True):
        mock = compile_mock(_net(False).build(), t_max=T_MAX, dtype="float64")
        t, n = _inputs()
        t = np.round(t / 8e-6) * 8e-6  # on the FPGA's release grid: no quantization in between
        order = np.argsort(t, axis=1, kind="stable")
        ts, ns = np.take_along_axis(t, order, 1), np.take_along_axis(n, order, 1)
        grad = jax.jit(jax.grad(lambda p, t, n: _loss(mock, p, t, n)))
        g_u = grad(mock.params, jnp.asarray(t), jnp.asarray(n))
        g_s = grad(mock.params, jnp.asarray(ts), jnp.asarray(ns))
        for key in g_s["weight"]:
            assert float(jnp.max(jnp.abs(g_s["weight"][key]))) > 0
            np.testing.assert_allclose(g_u["weight"][key], g_s["weight"][key], rtol=1e-9, atol=1e-12)
