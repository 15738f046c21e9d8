"""EventProp backward of a layer-parallel stage: every neuron's single spike at once (``docs/eventprop.md``)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array

from ._dynamics import free_coefficients, halved_coefficients
from ._eventprop_common import bias_integral, guarded_slope, zero_grads
from ._events import SpikeBuffer, effective_weight

__all__ = ["layer_backward"]


def layer_backward(
    stage: Any,  # a LayerParallelStage (not imported: it imports this module)
    sub: dict,
    buffers: dict[str, SpikeBuffer],
    out: dict[str, SpikeBuffer],
    ct: dict[str, Array],
    t_max: Array,
) -> tuple[dict, dict]:
    d_sub, d_times = zero_grads(sub, {n: buffers[n].times for n in stage.upstream()})
    for pop in stage.populations:
        if pop.name not in out:  # only spiking populations have buffers
            continue
        nrn = pop.nrn
        buf = out[pop.name]
        n = pop.size
        valid = buf.neurons >= 0
        idx = jnp.where(valid, buf.neurons, n)  # row n is a scratch slot for padding
        t_j = jnp.full((n + 1,), jnp.inf, buf.times.dtype).at[idx].set(jnp.where(valid, buf.times, jnp.inf))[:n]
        g_j = jnp.zeros((n + 1,), buf.times.dtype).at[idx].add(jnp.where(valid, ct[pop.name], 0.0))[:n]
        c_j = jnp.zeros((n + 1,), buf.times.dtype).at[idx].set(jnp.where(valid, buf.current, 0.0))[:n]
        spiked = jnp.isfinite(t_j)
        jump = nrn.has_jump
        # du/dt just before the spike (for instantaneous synapses the current is 0: leak and drift only).
        slope = (jnp.where(jump, 0.0, c_j) - nrn.theta) / nrn.tau_mem + nrn.drift
        slope = guarded_slope(slope, jnp.where(jnp.isfinite(nrn.tau_mem), nrn.theta / nrn.tau_mem, nrn.drift))
        trigger = _layer_triggers(pop, sub, buffers, t_j, spiked, t_max) if jump else None
        lam = jnp.where(spiked, -g_j / jnp.where(spiked, slope, 1.0), 0.0)  # lambda_v(t_j-)
        if trigger is not None:
            # A spike at an input's arrival (the jump crossed threshold) moves with that arrival alone.
            lam = jnp.where(trigger[1] > 0, 0.0, lam)
        if "bias" in d_sub:  # lambda_v(t_j-) = lam, lambda_I(t_j-) = 0; the bias acted over [0, t_j]
            span = jnp.where(spiked, t_j, 0.0)
            d_b = bias_integral(lam, jnp.zeros_like(lam), span, nrn)
            d_sub["bias"][pop.name] = d_sub["bias"][pop.name] + d_b.astype(d_sub["bias"][pop.name].dtype)
        for k_edge, e in enumerate(pop.edges_in):
            src = buffers[e.source]
            s = src.times + sub["delay"][e.key]
            ok = (src.neurons >= 0) & (s < t_max)
            delta = t_j[None, :] - s[:, None]
            active = ok[:, None] & spiked[None, :] & (delta > 0)
            d_safe = jnp.where(active, delta, 0.0)
            if nrn.halved and not jump:  # one exponential per pair instead of three ([K, n] of them)
                alpha, kappa, gamma = halved_coefficients(d_safe, nrn)
            else:
                alpha, kappa, gamma = free_coefficients(d_safe, nrn)
            if jump:  # a weight jumps v: its effect at the spike decays with the membrane alone
                kappa, dkappa = alpha, -alpha / nrn.tau_mem
            else:
                dkappa = (gamma - kappa) / nrn.tau_mem
            w_eff = effective_weight(e, sub)
            rows = jnp.where(ok, src.neurons, 0)
            contrib = jnp.where(active, lam[None, :] * kappa, 0.0)
            dw = jnp.zeros_like(w_eff).at[rows].add(contrib)
            if e.mask is not None:
                dw = jnp.where(e.mask, dw, 0.0)
            ds = -jnp.sum(jnp.where(active, w_eff[rows] * lam[None, :] * dkappa, 0.0), axis=1)
            if trigger is not None:
                claims = trigger[0][k_edge]  # [K, n]: this arrival is the spike's trigger
                ds = ds + jnp.sum(jnp.where(claims, g_j[None, :], 0.0), axis=1)
            d_sub["weight"][e.key] = d_sub["weight"][e.key] + dw.astype(d_sub["weight"][e.key].dtype)
            d_sub["delay"][e.key] = d_sub["delay"][e.key] + jnp.sum(ds).astype(d_sub["delay"][e.key].dtype)
            if e.source in d_times:
                d_times[e.source] = d_times[e.source] + ds
    return d_sub, d_times


def _layer_triggers(
    pop: Any, sub: dict, buffers: dict[str, SpikeBuffer], t_j: Array, spiked: Array, t_max: Array
) -> tuple[list[Array], Array]:
    """Which arrival triggered each jump-crossing spike: ``([K_e, n] per edge, claimed per neuron)``.

    A neuron with instantaneous synapses that spikes at an input's arrival crossed threshold by that
    jump, so its spike time is the arrival time. With several inputs at that instant the derivative is
    one-sided; the convention (shared with the event queue's adjoint) gives the spike's time to the
    last excitatory input applied in the forward order (edges in order, then spikes in buffer order).
    """
    keys, trig = [], []
    base = 1
    for e in pop.edges_in:
        src = buffers[e.source]
        s = src.times + sub["delay"][e.key]
        ok = (src.neurons >= 0) & (s < t_max)
        w = effective_weight(e, sub)[jnp.where(ok, src.neurons, 0)]
        hit = ok[:, None] & spiked[None, :] & (s[:, None] == t_j[None, :]) & (w > 0)
        order = base + jnp.arange(s.shape[0])
        keys.append(jnp.where(hit, order[:, None], 0))
        trig.append(hit)
        base += s.shape[0]
    if not keys:
        return [], jnp.zeros_like(t_j, dtype=jnp.int32)
    claim = jnp.max(jnp.stack([jnp.max(k, axis=0) for k in keys]), axis=0)
    return [(k == claim[None, :]) & h for k, h in zip(keys, trig)], claim
