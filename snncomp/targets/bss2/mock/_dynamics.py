"""Closed-form evolution of the emulated neuron and the threshold-crossing search within one step.

Per neuron, in ticks and LSB relative to the leak, between events (``a = tick/tau_mem``, ``be``, ``bi``
the synaptic rates)::

    du/dt = a (-u + ie + ii),   die/dt = -be ie,   dii/dt = -bi ii

so after ``s`` ticks ``ie(s) = ie e^{-be s}``, ``ii(s) = ii e^{-bi s}`` and
``u(s) = u e^{-a s} + a (ie K_e(s) + ii K_i(s))`` with ``K_x(s) = e^{-bx s} (1 - e^{-(a-bx) s}) / (a - bx)``
(``= s e^{-a s}`` when ``a = bx``), evaluated with ``expm1`` so that nearly equal rates lose nothing.

**Crossing search** within a step (a few FPGA ticks, short against every time constant of the chip,
>= 300 ns). ``u`` is known exactly at both ends with its slopes; a crossing exists iff ``u`` ends at or
above threshold or an interior maximum (where the slope changes sign) reaches it -- touching counts.
:func:`estimate` (every neuron, cheap) uses the cubic Hermite interpolant through both ends: the end
test is exact, the interior maximum is off by at most ``max|u''''| h^4 / 384`` (below ``1e-6`` of the
threshold for a 16-tick step and ``tau >= 1 us``, ``1e-4`` at the chip's fastest 0.3 us).
:func:`refine` (the earliest candidate only) repeats the decision on the exact trajectory and finds the
crossing by safeguarded Newton steps, to rounding. With equal excitatory and inhibitory time constants
``u`` has at most one extremum between events, so the search is exact up to the estimate's error for
maxima within that distance of threshold (which only a later candidate can suffer); with different
ones (fixed-pattern noise) it assumes at most one extremum per step.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

__all__ = ["estimate", "evolve", "refine", "slope"]


def _phi(d: Array, s: Array) -> Array:
    """``(1 - e^{-d s}) / d`` (``= s`` at ``d = 0``) without cancellation."""
    safe = jnp.where(d == 0, 1.0, d)
    return jnp.where(d == 0, s, -jnp.expm1(-d * s) / safe)


def evolve(u: Array, ie: Array, ii: Array, s: Array, a: Array, be: Array, bi: Array) -> tuple[Array, Array, Array]:
    """State after ``s >= 0`` ticks without events (free neuron)."""
    ee = jnp.exp(-be * s)
    ei = jnp.exp(-bi * s)
    em = jnp.exp(-a * s)
    u_s = u * em + a * (ie * ee * _phi(a - be, s) + ii * ei * _phi(a - bi, s))
    return u_s, ie * ee, ii * ei


def slope(u: Array, ie: Array, ii: Array, a: Array) -> Array:
    """``du/dt`` per tick."""
    return a * (-u + ie + ii)


def _second(u: Array, ie: Array, ii: Array, a: Array, be: Array, bi: Array) -> Array:
    """``d²u/dt²`` per tick²."""
    return -a * slope(u, ie, ii, a) - a * (be * ie + bi * ii)


def _cubic(c: tuple[Array, Array, Array, Array], x: Array) -> tuple[Array, Array]:
    c0, c1, c2, c3 = c
    return c0 + x * (c1 + x * (c2 + x * c3)), c1 + x * (2 * c2 + 3 * c3 * x)


def _quadratic_root_in_unit(qa: Array, qb: Array, qc: Array) -> Array:
    """The root in ``[0, 1]`` of ``qa x² + qb x + qc``, which changes sign on ``[0, 1]`` (stable formulas)."""
    disc = jnp.maximum(qb * qb - 4 * qa * qc, 0.0)
    q = -0.5 * (qb + jnp.where(qb >= 0, 1.0, -1.0) * jnp.sqrt(disc))
    r1 = q / jnp.where(qa == 0, 1.0, qa)
    r2 = qc / jnp.where(q == 0, 1.0, q)
    linear = -qc / jnp.where(qb == 0, 1.0, qb)
    r1_ok = (qa != 0) & (r1 >= 0) & (r1 <= 1)
    r = jnp.where(r1_ok, r1, jnp.where(q != 0, r2, linear))
    return jnp.clip(r, 0.0, 1.0)


def estimate(
    u0: Array, ie0: Array, ii0: Array, u1: Array, ie1: Array, ii1: Array, dt: Array, theta: Array, a: Array
) -> tuple[Array, Array, Array]:
    """Cheap estimate of the first crossing within ``(0, dt]`` from the cubic through both ends (all neurons).

    Returns ``(crosses, s, gap)``: whether ``u`` (``u0 < theta`` assumed) reaches ``theta`` -- ``u1 >= theta``
    exactly, or the cubic's interior maximum reaching it --, the cubic's crossing time in ticks, and
    ``|u_max - theta|`` of an interior maximum (``+inf`` where there is none).
    """
    h = dt
    d0 = slope(u0, ie0, ii0, a)
    d1 = slope(u1, ie1, ii1, a)
    c = (u0, h * d0, 3 * (u1 - u0) - h * (2 * d0 + d1), 2 * (u0 - u1) + h * (d0 + d1))
    has_max = (d0 > 0) & (d1 < 0)
    has_min = (d0 < 0) & (d1 > 0)
    x_e = _quadratic_root_in_unit(3 * c[3], 2 * c[2], c[1])
    u_e = _cubic(c, x_e)[0]
    max_reaches = has_max & (u_e >= theta)
    crosses = (h > 0) & ((u1 >= theta) | max_reaches)
    x_lo = jnp.where(has_min, x_e, 0.0)
    x_hi = jnp.where(max_reaches, x_e, 1.0)
    f_lo = _cubic(c, x_lo)[0] - theta
    f_hi = _cubic(c, x_hi)[0] - theta
    denom = f_hi - f_lo
    x = jnp.where(denom > 0, x_lo - f_lo * (x_hi - x_lo) / jnp.where(denom > 0, denom, 1.0), 0.5 * (x_lo + x_hi))
    x = jnp.clip(x, x_lo, x_hi)

    def cubic_newton(_: int, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        x, x_lo, x_hi = carry
        fx, dfx = _cubic(c, x)
        fx = fx - theta
        x_lo = jnp.where(fx < 0, x, x_lo)
        x_hi = jnp.where(fx < 0, x_hi, x)
        step = x - fx / jnp.where(dfx > 0, dfx, 1.0)
        return jnp.where((dfx > 0) & (step > x_lo) & (step < x_hi), step, 0.5 * (x_lo + x_hi)), x_lo, x_hi

    carry = (x, x_lo, x_hi)
    for k in range(4):
        carry = cubic_newton(k, carry)
    x = carry[0]
    gap = jnp.where(has_max, jnp.abs(u_e - theta), jnp.inf)
    return crosses, x * h, gap


def refine(
    u0: Array,
    ie0: Array,
    ii0: Array,
    u1: Array,
    dt: Array,
    theta: Array,
    a: Array,
    be: Array,
    bi: Array,
    s_guess: Array,
    d1: Array,
    newton: int = 3,
) -> tuple[Array, Array]:
    """Exact first crossing within ``(0, dt]`` of one neuron, refined from ``s_guess``.

    Returns ``(crosses, s)``. An interior maximum (slope ``> 0`` at 0, ``d1 < 0`` at ``dt``) is located by
    safeguarded Newton on ``du/dt = 0`` and evaluated on the exact trajectory, so a grazing decision is
    exact to rounding; then the crossing by safeguarded Newton on ``u = theta`` within its bracket.
    """
    h = dt
    d0 = slope(u0, ie0, ii0, a)
    has_max = (d0 > 0) & (d1 < 0)
    has_min = (d0 < 0) & (d1 > 0)

    # Extremum (meaningful only where the slope changes sign), from the crossing guess.
    def extremum_newton(_: int, carry: tuple[Array, ...]) -> tuple[Array, ...]:
        s_e, e_lo, e_hi, u_e, s_best = carry
        us, ies, iis = evolve(u0, ie0, ii0, s_e, a, be, bi)
        g = slope(us, ies, iis, a)
        gg = _second(us, ies, iis, a, be, bi)
        higher = us > u_e
        u_e = jnp.where(higher, us, u_e)
        s_best = jnp.where(higher, s_e, s_best)
        before = jnp.where(d0 > 0, g > 0, g < 0)
        e_lo = jnp.where(before, s_e, e_lo)
        e_hi = jnp.where(before, e_hi, s_e)
        step = s_e - g / jnp.where(gg != 0, gg, 1.0)
        s_e = jnp.where((gg != 0) & (step > e_lo) & (step < e_hi), step, 0.5 * (e_lo + e_hi))
        return s_e, e_lo, e_hi, u_e, s_best

    # Loops, not unrolled: one neuron's worth of work, much less code for XLA to compile.
    # u_e is the highest point evaluated: a lower bound of the maximum that converges to it.
    zero = jnp.zeros_like(h)
    init = (jnp.clip(s_guess, 0.0, h), zero, zero + h, u0 + zero, zero)
    _, e_lo, _, u_e, s_best = lax.fori_loop(0, newton + 2, extremum_newton, init)
    max_reaches = has_max & (u_e >= theta)
    crosses = (h > 0) & ((u1 >= theta) | max_reaches)
    lo = jnp.where(has_min, e_lo, 0.0)
    hi = jnp.where(max_reaches, s_best, h)

    def root_newton(_: int, carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        s, lo, hi = carry
        us, ies, iis = evolve(u0, ie0, ii0, s, a, be, bi)
        ds = slope(us, ies, iis, a)
        f = us - theta
        lo = jnp.where(f < 0, s, lo)
        hi = jnp.where(f < 0, hi, s)
        step = s - f / jnp.where(ds > 0, ds, 1.0)
        return jnp.where((ds > 0) & (step >= lo) & (step <= hi), step, 0.5 * (lo + hi)), lo, hi

    s, _, _ = lax.fori_loop(0, newton, root_newton, (jnp.clip(s_guess, lo, hi), lo, hi))
    return crosses, s
