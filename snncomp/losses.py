"""Loss functions of spike times and readout voltages.

All losses take plain arrays (leading axis: batch) and return the mean over the batch, so they
compose with any target. Time-to-first-spike arrays use ``+inf`` for a neuron that did not spike.

Neurons that never spike: every loss replaces a missing first spike by a *finite* stand-in time
(``t_nospike``, default ``t_max`` where a loss needs one) through ``jnp.where`` on the time itself,
so the value is finite and the gradient with respect to that neuron's (non-existent) spike is
exactly zero — never NaN. Gradient then flows only through spikes that happened; a loss that
needs a silent neuron to fire (e.g. the label neuron) gets no gradient from it, which is why the
regularizers below exist.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import nn
from jaxtyping import Array, ArrayLike, Float, Int

__all__ = [
    "finite_times",
    "first_spike_accuracy",
    "first_spike_class",
    "first_spike_mse",
    "li_integral_cross_entropy",
    "li_max_cross_entropy",
    "soft_spike_count",
    "spike_count_penalty",
    "spike_time_regularizer",
    "ttfs_cross_entropy",
]


def finite_times(t: ArrayLike, t_nospike: float) -> Array:
    """``t`` with every non-finite entry replaced by ``t_nospike`` (zero gradient there)."""
    t = jnp.asarray(t)
    return jnp.where(jnp.isfinite(t), t, jnp.asarray(t_nospike, dtype=t.dtype))


def ttfs_cross_entropy(
    t_first: Float[ArrayLike, "batch classes"], labels: Int[ArrayLike, " batch"], *, tau: float, t_max: float
) -> Array:
    """Cross-entropy of ``softmax(-t_first / tau)`` against ``labels``.

    The label neuron should fire first; ``tau`` sets how sharply earlier spikes dominate. A silent
    neuron counts as firing at ``t_max``.
    """
    t = finite_times(t_first, t_max)
    logp = nn.log_softmax(-t / tau, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1))


def first_spike_mse(
    t_first: Float[ArrayLike, "batch n"], t_target: Float[ArrayLike, "batch n"], *, t_max: float
) -> Array:
    """Mean squared error of first-spike times against targets (silent neurons count as ``t_max``)."""
    t = finite_times(t_first, t_max)
    return jnp.mean(jnp.sum((t - jnp.asarray(t_target)) ** 2, axis=-1))


def li_max_cross_entropy(v_max: Float[ArrayLike, "batch classes"], labels: Int[ArrayLike, " batch"]) -> Array:
    """Cross-entropy with the maximum over time of each ``li`` readout's voltage as logits."""
    logp = nn.log_softmax(jnp.asarray(v_max), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1))


def li_integral_cross_entropy(
    v_integral: Float[ArrayLike, "batch classes"], labels: Int[ArrayLike, " batch"], *, t_max: float
) -> Array:
    """Cross-entropy with the time-averaged readout voltage ``(1/t_max) ∫ v dt`` as logits."""
    logp = nn.log_softmax(jnp.asarray(v_integral) / t_max, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=-1))


def spike_time_regularizer(
    t_first: Float[ArrayLike, "batch classes"], labels: Int[ArrayLike, " batch"], *, tau: float, t_max: float
) -> Array:
    """``mean(exp(t_label / tau) - 1)``: pushes the label neuron to fire early (0 when it fires at 0).

    A silent label neuron contributes ``exp(t_max / tau) - 1`` with zero gradient.
    """
    t = finite_times(t_first, t_max)
    t_label = jnp.take_along_axis(t, jnp.asarray(labels)[:, None], axis=-1)[:, 0]
    return jnp.mean(jnp.expm1(t_label / tau))


def soft_spike_count(times: Float[ArrayLike, "batch events"], *, t_max: float, tau: float) -> Array:
    """A differentiable stand-in for the spike count: ``Σ_k sigmoid((t_max - t_k) / tau)`` per sample.

    Each spike well inside the window counts ≈ 1; its gradient moves spikes later (towards leaving
    the window), so penalising it reduces activity. Padding (``+inf``) counts 0.
    """
    t = jnp.asarray(times)
    fin = jnp.isfinite(t)
    s = nn.sigmoid((t_max - jnp.where(fin, t, t_max + 50 * tau)) / tau)
    return jnp.sum(jnp.where(fin, s, 0.0), axis=-1)


def spike_count_penalty(counts: Float[ArrayLike, "batch n"], *, target: float = 0.0, power: int = 2) -> Array:
    """``mean |count - target|^power`` (a metric: counts are piecewise constant, so its gradient is 0)."""
    return jnp.mean(jnp.abs(jnp.asarray(counts, dtype=jnp.result_type(float)) - target) ** power)


def first_spike_class(t_first: Float[ArrayLike, "batch classes"]) -> Array:
    """Decoded class: the earliest-spiking neuron; ``-1`` where no output neuron spiked."""
    t = jnp.asarray(t_first)
    any_spike = jnp.any(jnp.isfinite(t), axis=-1)
    return jnp.where(any_spike, jnp.argmin(t, axis=-1), -1)


def first_spike_accuracy(t_first: Float[ArrayLike, "batch classes"], labels: Int[ArrayLike, " batch"]) -> Array:
    """Fraction of samples whose earliest output spike is the label's (no spike counts as wrong)."""
    return jnp.mean(first_spike_class(t_first) == jnp.asarray(labels))
