"""Hardware-in-the-loop gradients on ``bss2-mock``: the forward pass on the emulator, the backward pass by
EventProp on the software model replayed at the recorded spikes (``MockExecutable._differentiable_spikes``).

Where the emulator is the software model (no timestamp quantization, no event-rate limit), the gradient
must equal EventProp on the dequantized network; with the ideal preset's quantizations it must stay close.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.targets.bss2 import dequantized_network
from snncomp.targets.bss2.mock import MockConfig, compile_mock

T_MAX = 0.03
TICK = 8e-9 * 1000.0  # one FPGA cycle in model seconds (speedup 1000)
HIDDEN = 10


def _net() -> snncomp.ir.Network:
    net = snncomp.Network("hil")
    x = net.input("x", 5)
    h = net.lif("h", HIDDEN, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(2.5, 1.0, seed=1))
    net.connect(h, o, init=snncomp.init.normal(0.6, 0.3, seed=2))
    return net.build()


def _inputs(batch: int = 6) -> dict[str, snncomp.Spikes]:
    rng = np.random.default_rng(0)
    first = np.round(rng.uniform(0, 0.01, (batch, 5)) / TICK) * TICK  # on the FPGA's release grid
    first[:, 4] = 0.0
    return {"x": snncomp.Spikes.from_first_spike_times(first, dtype="float64")}


def _smooth_loss(rec: snncomp.Recording) -> jax.Array:
    """A loss of every spike time with cotangents that differ per spike (so every path is exercised)."""
    total = jnp.zeros(())
    for pop, size in (("h", HIDDEN), ("o", 3)):
        t = rec.spikes[pop].to_first_spike_times(size)
        finite = jnp.isfinite(t)
        total = total + jnp.sum(jnp.where(finite, jnp.sin(300.0 * jnp.where(finite, t, 0.0)), 0.0))
    return total


def _sum_loss(rec: snncomp.Recording) -> jax.Array:
    t = rec.spikes["o"].to_first_spike_times(3)
    return jnp.sum(jnp.where(jnp.isfinite(t), t, 0.0))


def _grads(mock_cfg: MockConfig, loss: Any) -> tuple[dict, dict, Any]:
    """(HIL gradient on the mock, EventProp gradient on the dequantized software network, mock)."""
    mock = compile_mock(_net(), t_max=T_MAX, dtype="float64", mock=mock_cfg)
    soft = snncomp.compile(dequantized_network(mock.compile_result), target="jax", t_max=T_MAX, dtype="float64")
    x = _inputs()
    g_mock = jax.grad(lambda p: loss(mock.run(x, p, trial=0)))(mock.params)
    g_soft = jax.grad(lambda p: loss(soft.apply(p, x)))(soft.params)
    return g_mock["weight"], g_soft["weight"], mock


@pytest.fixture(autouse=True)
def _x64() -> Any:
    with jax.enable_x64(True):
        yield


def test_hil_gradient_equals_eventprop_on_the_software_model() -> None:
    exact = MockConfig(quantize_timestamps=False, rate_limit=False)
    g_mock, g_soft, _ = _grads(exact, _smooth_loss)
    for key in g_soft:
        a, b = np.asarray(g_mock[key]), np.asarray(g_soft[key])
        assert np.any(b != 0.0), key
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max(), err_msg=key)


def test_hil_gradient_is_blind_to_the_readout_delay() -> None:
    """The constant readout latency shifts every recorded time but not what the spikes depend on."""
    base = MockConfig(quantize_timestamps=False, rate_limit=False)
    late = MockConfig(quantize_timestamps=False, rate_limit=False, readout_delay=8e-8)
    g0, _, m0 = _grads(base, _sum_loss)
    g1, _, m1 = _grads(late, _sum_loss)
    x = _inputs()
    t0 = np.asarray(m0.run(x).spikes["o"].to_first_spike_times(3))
    t1 = np.asarray(m1.run(x).spikes["o"].to_first_spike_times(3))
    finite = np.isfinite(t0)
    assert finite.any()
    np.testing.assert_allclose(t1[finite] - t0[finite], 8e-8 * 1000.0, rtol=1e-9)
    for key in g0:
        np.testing.assert_allclose(np.asarray(g1[key]), np.asarray(g0[key]), rtol=1e-9, atol=1e-12, err_msg=key)


def test_hil_gradient_on_the_ideal_preset_is_close_to_eventprop() -> None:
    """Quantized timestamps and rate-limited buses move spikes by about a tick: the gradient barely turns."""
    g_mock, g_soft, mock = _grads(MockConfig.ideal(), _smooth_loss)
    assert mock.health is not None and mock.health.totals()["delayed"] > 0  # the rate limit really acted
    a = np.concatenate([np.ravel(g_mock[k]) for k in sorted(g_soft)])
    b = np.concatenate([np.ravel(g_soft[k]) for k in sorted(g_soft)])
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cosine > 0.999, cosine
    assert np.linalg.norm(a - b) < 0.05 * np.linalg.norm(b)


def test_hil_gradient_under_jit_and_on_the_realistic_preset_is_finite() -> None:
    mock = compile_mock(_net(), t_max=T_MAX, mock=MockConfig.realistic(), chip_seed=3)
    x = _inputs()

    @jax.jit
    def grad(p: Any) -> Any:
        return jax.grad(lambda q: _smooth_loss(mock.run(x, q, trial=0)))(p)

    g = grad(mock.params)
    leaves = jax.tree.leaves(g["weight"])
    assert all(np.all(np.isfinite(np.asarray(v))) for v in leaves)
    assert any(np.any(np.asarray(v) != 0.0) for v in leaves)
    # Weights outside the routing's reach keep the mock's straight-through rule: same shapes as params.
    assert jax.tree.structure(g) == jax.tree.structure(mock.params)
