"""What the EventProp backward passes of both stage kinds share (``docs/eventprop.md``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array

from ._dynamics import free_coefficients

__all__ = ["bias_integral", "guarded_slope", "zero_grads"]


def bias_integral(
    lam_u: Array,
    lam_i: Array,
    span: Array,
    nrn: Any,
    free: Array | bool = True,
    coefficients: tuple[Array, Array, Array] | None = None,
) -> Array:
    """``dL/d bias`` over ``span`` before a point where the adjoint is ``(lam_u, lam_i)``, per neuron.

    ``dL/db = integral of lambda . df/db``: the bias enters ``du/dt`` as ``b / tau_mem`` with instantaneous
    synapses (``b`` for ``if`` neurons) and ``dI/dt`` as ``b / tau_syn`` otherwise. Going back a time ``s``
    the adjoint is ``lambda_u alpha(s)`` and ``lambda_I gamma(s) + lambda_u beta(s)`` (``free_coefficients``),
    whose integrals are closed forms: ``tau_mem (1 - alpha)``, ``tau_syn (1 - gamma)`` and, from
    ``tau_mem du/ds = -u + I`` with ``u = beta``, ``I = gamma``: ``tau_syn (1 - gamma) - tau_mem beta``.
    While the membrane is clamped (``free`` False) ``lambda_u`` is 0 there. ``coefficients``: the
    ``free_coefficients(span, nrn)`` a caller already has (the event loop's backward step does).
    """
    alpha, beta, gamma = free_coefficients(span, nrn) if coefficients is None else coefficients
    lam_u = jnp.where(free, lam_u, 0.0)
    leaky = jnp.isfinite(nrn.tau_mem)
    jump_part = jnp.where(leaky, lam_u * (1.0 - alpha), lam_u * span)
    tm = jnp.where(leaky, nrn.tau_mem, 0.0)
    cuba_part = lam_i * (1.0 - gamma) + lam_u * ((1.0 - gamma) - tm * beta / nrn.tau_syn)
    return jnp.where(nrn.jump, jump_part, cuba_part)


def guarded_slope(slope: Array, scale: Any) -> Array:
    """The membrane slope at a spike, kept at least ``sqrt(eps) * theta / tau_mem`` away from zero.

    A spike exactly at a grazing crossing (the peak touches threshold) has slope 0 and an
    infinite derivative; its time is ill-conditioned at the ``sqrt(eps)`` level anyway, so the
    adjoint divides by this floor instead: large but finite gradients, never inf or NaN.
    """
    if not isinstance(scale, jax.Array) and hasattr(scale, "theta"):
        scale = scale.theta / scale.tau_mem
    floor = jnp.sqrt(jnp.finfo(slope.dtype).eps) * jnp.abs(scale)
    return jnp.where(jnp.abs(slope) < floor, jnp.where(slope < 0, -floor, floor), slope)


def zero_grads(sub: dict, times: dict[str, Array]) -> tuple[dict, dict]:
    d_sub = {group: {k: jnp.zeros_like(v) for k, v in values.items()} for group, values in sub.items()}
    return d_sub, {n: jnp.zeros_like(t) for n, t in times.items()}
