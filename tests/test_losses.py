"""Losses: values against direct numpy formulas; silent neurons give finite values and zero gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from snncomp import losses

INF = np.inf


def _np_ce(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def test_ttfs_cross_entropy_value_and_silent_neurons() -> None:
    t = np.array([[1.0, 2.0, INF], [INF, INF, INF], [0.5, 0.4, 3.0]])
    y = np.array([0, 1, 1])
    got = float(losses.ttfs_cross_entropy(t, y, tau=0.5, t_max=4.0))
    want = _np_ce(-np.where(np.isfinite(t), t, 4.0) / 0.5, y)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    g = jax.grad(lambda tt: losses.ttfs_cross_entropy(tt, y, tau=0.5, t_max=4.0))(jnp.asarray(t))
    g = np.asarray(g)
    assert np.all(np.isfinite(g))
    assert np.all(g[~np.isfinite(t)] == 0.0)
    assert g[0, 0] > 0 or g[0, 0] < 0  # the label neuron's spike time gets a gradient


def test_first_spike_mse_and_regularizer() -> None:
    t = np.array([[1.0, INF]])
    target = np.array([[0.5, 1.0]])
    np.testing.assert_allclose(float(losses.first_spike_mse(t, target, t_max=3.0)), 0.25 + 4.0)
    g = np.asarray(jax.grad(lambda tt: losses.first_spike_mse(tt, target, t_max=3.0))(jnp.asarray(t)))
    np.testing.assert_allclose(g, [[1.0, 0.0]])
    r = float(losses.spike_time_regularizer(np.array([[0.2, 0.1], [INF, 0.0]]), np.array([0, 0]), tau=1.0, t_max=2.0))
    np.testing.assert_allclose(r, (np.expm1(0.2) + np.expm1(2.0)) / 2, rtol=1e-6)


def test_li_losses() -> None:
    v = np.array([[0.1, 0.9, 0.3], [1.2, -0.2, 0.0]])
    y = np.array([1, 0])
    np.testing.assert_allclose(float(losses.li_max_cross_entropy(v, y)), _np_ce(v, y), rtol=1e-6)
    np.testing.assert_allclose(float(losses.li_integral_cross_entropy(v, y, t_max=2.0)), _np_ce(v / 2.0, y), rtol=1e-6)


def test_soft_spike_count_and_penalty() -> None:
    times = np.array([[0.1, 0.2, INF, INF], [INF, INF, INF, INF]])
    c = np.asarray(losses.soft_spike_count(times, t_max=1.0, tau=0.01))
    np.testing.assert_allclose(c, [2.0, 0.0], atol=1e-6)
    g = np.asarray(jax.grad(lambda tt: losses.soft_spike_count(tt, t_max=1.0, tau=0.3).sum())(jnp.asarray(times)))
    assert np.all(np.isfinite(g)) and np.all(g[:, :2][np.isfinite(times[:, :2])] < 0)
    np.testing.assert_allclose(float(losses.spike_count_penalty(np.array([[1, 3]]), target=2)), 1.0)


def test_decoding() -> None:
    t = np.array([[0.3, 0.1, 0.2], [INF, INF, INF], [INF, 0.5, INF]])
    assert np.asarray(losses.first_spike_class(t)).tolist() == [1, -1, 1]
    np.testing.assert_allclose(float(losses.first_spike_accuracy(t, np.array([1, 0, 2]))), 1 / 3)
