"""Closed-form dynamics of current-based LIF neurons between events.

Every quantity is per neuron. The simulator works with the membrane potential
relative to rest, ``u = v - v_leak``, so that the free dynamics are::

    tau_mem du/dt = -u + I
    tau_syn dI/dt = -I

From a state ``(u0, I0)`` the exact solution after a time ``s >= 0`` with no
event in between is::

    I(s) = I0 exp(-s / tau_syn)
    u(s) = exp(-s / tau_mem) (u0 + I0 / tau_mem * phi(s))
    phi(s) = (exp(s delta) - 1) / delta,   delta = 1 / tau_mem - 1 / tau_syn

(``phi(s) = s`` when ``tau_mem = tau_syn``). Written this way there is no
division by ``tau_syn - tau_mem``, so ratios close to 1 are as accurate as any
other. For ``|s delta| >= 1`` the equivalent form
``exp(-s/tau_mem) phi(s) = (exp(-s/tau_syn) - exp(-s/tau_mem)) / delta`` is used,
which never overflows.

A neuron's parameter arrays have shape ``[n]`` or ``[1]`` (the same value for
every neuron); everything here broadcasts, so uniform populations pay for one
exponential per event instead of one per neuron.

Three extensions keep this form (see ``_program._columns``):

* **bias** (a constant input ``b``): measured from the biased rest ``v_leak + b``,
  ``u = v - v_leak - b`` and ``I' = I - b`` obey the equations above unchanged;
  only the start differs, ``(u, I') = (u_init, i_init) = (-b, -b)`` at ``t = 0``
  (``(-b, 0)`` with instantaneous synapses), and threshold and reset move by ``-b``.
* **instantaneous synapses** (``jump``): a delivery adds the weight to ``u``
  instead of ``I``, which then stays 0 (its ``tau_syn`` is a finite placeholder).
* **no leak** (``if`` neurons): ``tau_mem = inf`` (``alpha = 1``) and a constant
  ``drift``, ``du/dt = drift``, which ``free_evolve`` adds as ``drift * s``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

__all__ = ["NeuronParams", "free_coefficients", "free_evolve", "halved_coefficients", "log1p_over"]


class NeuronParams(eqx.Module):
    """Per-neuron constants of one population (or a concatenation of populations).

    ``theta = v_threshold - v_leak`` and ``u_reset = v_reset - v_leak`` are
    measured from rest. ``spiking`` is False for ``li`` neurons (no threshold).
    ``max_spikes`` is the spike budget per run (a large number when unbounded).
    """

    tau_mem: Float[Array, " n"]
    tau_syn: Float[Array, " n"]
    theta: Float[Array, " n"]
    u_reset: Float[Array, " n"]
    v_leak: Float[Array, " n"]
    t_refrac: Float[Array, " n"]
    max_spikes: Int[Array, " n"]
    spiking: Array
    delta: Float[Array, " n"]
    jump: Array
    """Instantaneous synapses: a delivery adds to ``u`` (per neuron, bool)."""
    drift: Float[Array, " n"]
    """``du/dt`` added to the free evolution (``if`` neurons' bias; 0 elsewhere)."""
    u_init: Float[Array, " n"]
    i_init: Float[Array, " n"]
    bias: Float[Array, " n"]
    """The bias the columns above were shifted by (see :meth:`with_bias`)."""
    size: int = eqx.field(static=True)
    has_refrac: bool = eqx.field(static=True)
    has_jump: bool = eqx.field(static=True, default=False)
    has_drift: bool = eqx.field(static=True, default=False)
    has_init: bool = eqx.field(static=True, default=False)
    halved: bool = eqx.field(static=True, default=False)
    """``tau_syn = tau_mem / 2`` exactly for every neuron (see :func:`halved_coefficients`)."""

    @staticmethod
    def build(columns: dict[str, np.ndarray], size: int, dtype: np.dtype) -> NeuronParams:
        """Pack numpy columns (each of length ``size``) into arrays; uniform columns shrink to ``[1]``."""

        def pack(x: np.ndarray, dt: np.dtype) -> Array:
            x = np.asarray(x)
            if x.size and np.all(x == x.reshape(-1)[0]):
                x = x.reshape(-1)[:1]
            return jnp.asarray(x.astype(dt))

        tau_mem = np.asarray(columns["tau_mem"], np.float64)
        tau_syn = np.asarray(columns["tau_syn"], np.float64)
        # delta in float64 first: 1/tau_mem - 1/tau_syn loses digits when the two are close.
        delta = 1.0 / tau_mem - 1.0 / tau_syn
        refrac = np.asarray(columns["t_refrac"], np.float64)
        zeros = np.zeros((size,))
        jump = np.asarray(columns.get("jump", np.zeros((size,), bool)), bool)
        drift = np.asarray(columns.get("drift", zeros), np.float64)
        u_init = np.asarray(columns.get("u_init", zeros), np.float64)
        i_init = np.asarray(columns.get("i_init", zeros), np.float64)
        bias = np.asarray(columns.get("bias", zeros), np.float64)
        return NeuronParams(
            tau_mem=pack(tau_mem, dtype),
            tau_syn=pack(tau_syn, dtype),
            theta=pack(columns["theta"], dtype),
            u_reset=pack(columns["u_reset"], dtype),
            v_leak=pack(columns["v_leak"], dtype),
            t_refrac=pack(refrac, dtype),
            max_spikes=pack(columns["max_spikes"], np.dtype(np.int32)),
            spiking=pack(columns["spiking"], np.dtype(bool)),
            delta=pack(delta, dtype),
            jump=pack(jump, np.dtype(bool)),
            drift=pack(drift, dtype),
            u_init=pack(u_init, dtype),
            i_init=pack(i_init, dtype),
            bias=pack(bias, dtype),
            size=size,
            halved=bool(np.all(np.isfinite(tau_mem)) and np.all(tau_syn > 0) and np.all(tau_mem == 2.0 * tau_syn)),
            has_refrac=bool(np.any(refrac > 0)),
            has_jump=bool(np.any(jump)),
            # The bias is a run-time parameter (params["bias"]): whatever its compiled value, the start
            # state and (for if neurons) the drift are kept.
            has_drift=bool(np.any(np.isinf(tau_mem))),
            has_init=True,
        )

    def with_bias(self, bias: Array) -> NeuronParams:
        """These constants for another ``bias`` (``[n]`` or ``[1]``; may be traced, differentiable)."""
        d = bias - self.bias
        leaky = jnp.isfinite(self.tau_mem)
        zero = jnp.zeros_like(d)
        return eqx.tree_at(
            lambda p: (p.theta, p.u_reset, p.v_leak, p.u_init, p.i_init, p.drift, p.bias),
            self,
            (
                jnp.where(leaky, self.theta - d, self.theta),
                jnp.where(leaky, self.u_reset - d, self.u_reset),
                jnp.where(leaky, self.v_leak + d, self.v_leak),
                jnp.where(leaky, -bias, zero),
                jnp.where(leaky & ~self.jump, -bias, zero),
                jnp.where(leaky, zero, bias),
                bias + zero,
            ),
        )

    def deliver(self, u: Array, i: Array, row: Array, free: Array | bool = True) -> tuple[Array, Array]:
        """``(u, I)`` after adding the weight ``row``: to ``I``, or to ``u`` for instantaneous synapses.

        ``free`` is False where a neuron is refractory: its membrane is held, so a jump is lost there.
        """
        if not self.has_jump:
            return u, i + row
        return u + jnp.where(self.jump & free, row, 0.0), i + jnp.where(self.jump, 0.0, row)

    def initial_state(self, n: int) -> tuple[Array, Array]:
        """``(u, I)`` at ``t = 0`` (zero without a bias), each ``[n]``."""
        dtype = self.tau_mem.dtype
        return jnp.broadcast_to(self.u_init, (n,)).astype(dtype), jnp.broadcast_to(self.i_init, (n,)).astype(dtype)

    def at(self, name: str, j: Array) -> Array:
        """Parameter ``name`` of neuron ``j`` (works for uniform ``[1]`` arrays too)."""
        x = getattr(self, name)
        return x[0] if x.shape[0] == 1 else x[j]


def log1p_over(w: Array) -> Array:
    """``log1p(w) / w`` for ``w > -1``, with its limit 1 at ``w = 0`` (series near 0)."""
    small = jnp.abs(w) < 1e-4
    ws = jnp.where(small, 1.0, w)
    series = 1.0 - w / 2 + w * w / 3 - w * w * w / 4
    return jnp.where(small, series, jnp.log1p(ws) / ws)


def free_coefficients(s: Array, nrn: NeuronParams) -> tuple[Array, Array, Array]:
    """Coefficients of the free evolution over ``s >= 0`` (finite).

    ``u(s) = alpha u0 + beta I0`` and ``I(s) = gamma I0`` with
    ``alpha = exp(-s/tau_mem)``, ``gamma = exp(-s/tau_syn)`` and
    ``beta = exp(-s/tau_mem) phi(s) / tau_mem`` (see the module docstring).
    """
    tm, ts, d = nrn.tau_mem, nrn.tau_syn, nrn.delta
    alpha = jnp.exp(-s / tm)
    gamma = jnp.exp(-s / ts)
    x = s * d
    small = jnp.abs(x) < 1.0
    zero = d == 0
    d_safe = jnp.where(zero, 1.0, d)
    # |x| < 1: exp(-s/tau_mem) * expm1(x) / delta cannot overflow and has no cancellation.
    near = jnp.where(zero, s * alpha, alpha * jnp.expm1(jnp.where(small, x, 0.0)) / d_safe)
    # |x| >= 1: the difference of the two exponentials loses at most one digit.
    far = (gamma - alpha) / jnp.where(small, 1.0, d)
    beta = jnp.where(small, near, far) / tm
    return alpha, beta, gamma


def halved_coefficients(s: Array, nrn: NeuronParams) -> tuple[Array, Array, Array]:
    """:func:`free_coefficients` where ``tau_syn = tau_mem / 2`` (``nrn.halved``), from one exponential.

    Then ``gamma = alpha^2`` and ``beta = -alpha expm1(-s/tau_mem)``, so ``e = expm1(-s/tau_mem)`` gives all
    three (``alpha = 1 + e``) where :func:`free_coefficients` takes three transcendentals. ``alpha`` is then
    accurate to an ulp of 1 rather than of itself, which a sum of such terms (a gradient) cannot tell
    apart; the layer backward, which evaluates them for every (input, neuron) pair, uses it.
    """
    e = jnp.expm1(-s / nrn.tau_mem)
    alpha = 1.0 + e
    return alpha, -alpha * e, alpha * alpha


def free_evolve(u0: Array, i0: Array, s: Array, nrn: NeuronParams) -> tuple[Array, Array]:
    """State ``(u, I)`` after a time ``s >= 0`` of free evolution from ``(u0, I0)``."""
    alpha, beta, gamma = free_coefficients(s, nrn)
    u = alpha * u0 + beta * i0
    if nrn.has_drift:
        u = u + nrn.drift * s
    return u, gamma * i0


def evolve(u: Array, i: Array, ref_end: Array, t0: Array, t1: Array, nrn: NeuronParams) -> tuple[Array, Array]:
    """Advance ``(u, I)`` from ``t0`` to ``t1 >= t0`` with the refractory clamp.

    While ``t < ref_end`` the membrane is held (``u`` is already ``u_reset``
    there) and only ``I`` decays; the free evolution starts at
    ``max(t0, ref_end)``.
    """
    if not nrn.has_refrac:
        return free_evolve(u, i, t1 - t0, nrn)
    start = jnp.clip(ref_end, t0, t1)
    i_start = i * jnp.exp(-(start - t0) / nrn.tau_syn)
    u1, _ = free_evolve(u, i_start, t1 - start, nrn)
    return u1, i * jnp.exp(-(t1 - t0) / nrn.tau_syn)
