"""The layer-parallel engine's closed-form neuron evolution and exact threshold-crossing search.

The general engine's evolution formula (re-written here, not imported from :mod:`._dynamics`) and the
exact analysis of one candidate interval (:func:`_crossing`, step 3 of :mod:`._layered`): the extrema of
``u`` and its first crossing by safeguarded Halley steps (:func:`_halley`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

# Safeguarded Halley steps (extremum of u, crossing) from the starts chosen in ``_crossing``; measured on
# the Yin-Yang network, (3, 3) already agree with 16/24 steps to 1e-9 ticks in float64.
_STEPS = {4: (3, 4), 8: (4, 6)}  # by dtype size


def _phi(d: Array, s: Array) -> Array:
    """``(1 - e^{-d s}) / d`` (``= s`` at ``d = 0``), as the general engine evaluates it."""
    safe = jnp.where(d == 0, 1.0, d)
    return jnp.where(d == 0, s, -jnp.expm1(-d * s) / safe)


def _psi(d: Array, s: Array) -> Array:
    """``(e^{d s} - 1) / d`` (``= s`` at ``d = 0``)."""
    safe = jnp.where(d == 0, 1.0, d)
    return jnp.where(d == 0, s, jnp.expm1(d * s) / safe)


def _evolve(u: Array, ie: Array, ii: Array, s: Array, a: Array, be: Array, bi: Array) -> tuple[Array, Array, Array]:
    """State after ``s`` ticks without events (the general engine's formula)."""
    ee = jnp.exp(-be * s)
    ei = jnp.exp(-bi * s)
    em = jnp.exp(-a * s)
    return u * em + a * (ie * ee * _phi(a - be, s) + ii * ei * _phi(a - bi, s)), ie * ee, ii * ei


def _halley(f: Any, lo: Array, hi: Array, f_lo: Array, f_hi: Array, s: Array, steps: int) -> Array:
    """A root of ``f`` (returning value, slope and curvature) in ``[lo, hi]``, where ``f`` changes sign once.

    Starts from ``s`` (or the secant point where ``s`` lies outside), keeps the bracket, and takes a Halley
    step (cubic convergence) where it stays inside, else bisects.
    """
    lo_pos = f_lo > 0
    a, b = jnp.minimum(lo, hi), jnp.maximum(lo, hi)
    denom = f_hi - f_lo
    secant = jnp.where(denom != 0, lo - f_lo * (hi - lo) / jnp.where(denom != 0, denom, 1.0), 0.5 * (lo + hi))
    s = jnp.where((s > a) & (s < b), s, jnp.clip(secant, a, b))

    def one(_: int, c: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        s, lo, hi = c
        fs, d1, d2 = f(s)
        lo_side = (fs > 0) == lo_pos
        lo = jnp.where(lo_side, s, lo)
        hi = jnp.where(lo_side, hi, s)
        den = 2 * d1 * d1 - fs * d2
        step = s - 2 * fs * d1 / jnp.where(den != 0, den, 1.0)
        inside = (den != 0) & (step >= jnp.minimum(lo, hi)) & (step <= jnp.maximum(lo, hi))  # closed: converged stays
        return jnp.where(fs == 0, s, jnp.where(inside, step, 0.5 * (lo + hi))), lo, hi

    return lax.fori_loop(0, steps, one, (s, lo, hi))[0]  # a loop, not unrolled: far less to compile


def _crossing(
    u0: Array,
    ie0: Array,
    ii0: Array,
    u1: Array,
    h: Array,
    guess: Array,
    th: Array,
    a: Array,
    be: Array,
    bi: Array,
    steps: tuple[int, int] = (4, 6),
) -> tuple[Array, Array, Array]:
    """Exact first crossing of ``theta`` within ``[0, h]`` from ``(u0, ie0, ii0)``; ``u1`` is ``u(h)``.

    ``guess`` is an estimate of the first extremum (ignored when outside ``(0, h)``). Returns ``(crosses,
    s, umax)``: whether ``u`` reaches ``theta``, when, and the highest interior maximum of ``u`` in the
    interval (``-inf`` if none), for the grazing value.
    """
    al, bt = a - be, a - bi
    g0 = ie0 + ii0 - u0  # G(0) = u'(0) / a

    def G(s: Array) -> tuple[Array, Array, Array]:
        """``e^{a s} u'(s) / a`` and its first two derivatives (``e^{x s} = 1 + x psi(x, s)``)."""
        pe, pi = _psi(al, s), _psi(bt, s)
        xe, xi = -be * ie0 * (1 + al * pe), -bi * ii0 * (1 + bt * pi)
        return g0 - be * ie0 * pe - bi * ii0 * pi, xe + xi, al * xe + bt * xi

    def U(s: Array) -> tuple[Array, Array, Array]:
        us, ies, iis = _evolve(u0, ie0, ii0, s, a, be, bi)
        d1 = a * (ies + iis - us)
        return us - th, d1, -a * d1 - a * (be * ies + bi * iis)

    zero = jnp.zeros_like(u0)
    # G' = 0 at most once: b_e I_e e^{al s} = -b_i I_i e^{bt s}; G is monotone on either side.
    has_c = (ie0 > 0) & (ii0 < 0) & (bi != be)
    ratio = jnp.where(has_c, -bi * ii0 / jnp.where(has_c, be * ie0, 1.0), 1.0)
    sc = jnp.log(ratio) / jnp.where(has_c, bi - be, 1.0)
    sc = jnp.where(has_c & (sc > 0) & (sc < h), sc, h)
    gc, gh = G(jnp.stack([sc, h]))[0]
    z1_ok = (g0 > 0) != (gc > 0)
    z2_ok = (sc < h) & ((gc > 0) != (gh > 0))
    # Both extrema (where they exist) in one bracketed search.
    lo, hi = jnp.stack([zero, sc]), jnp.stack([sc, h])
    starts = jnp.stack([guess, jnp.full_like(guess, -1.0)])  # the second one from the secant
    z1, z2 = _halley(G, lo, hi, jnp.stack([g0, gc]), jnp.stack([gc, gh]), starts, steps[0])
    # u is monotone between consecutive extrema: pieces [0, p1], [p1, p2], [p2, h].
    p1 = jnp.where(z1_ok, z1, jnp.where(z2_ok, z2, h))
    p2 = jnp.where(z1_ok & z2_ok, z2, h)
    inner = jnp.stack([p1, p2]) < h
    fp, _, cp = U(jnp.stack([p1, p2]))
    up1, up2 = jnp.where(inner, fp + th, u1)
    cp1, cp2 = jnp.where(inner, cp, 0.0)  # curvature at the extrema
    start = u0 >= th
    in1 = up1 >= th
    in2 = ~in1 & (up2 >= th)
    in3 = ~in1 & ~in2 & (u1 >= th)
    crosses = start | in1 | in2 | in3
    lo = jnp.where(in1, zero, jnp.where(in2, p1, p2))
    hi = jnp.where(in1, p1, jnp.where(in2, p2, h))
    f_lo = jnp.where(in1, u0, jnp.where(in2, up1, up2)) - th
    f_hi = jnp.where(in1, up1, jnp.where(in2, up2, u1)) - th
    # Start next to an extremum from its parabola (a crossing close to a maximum or a minimum is a near
    # double root, where Newton-type steps from afar crawl); otherwise from the secant.
    c_lo = jnp.where(in2, cp1, jnp.where(in3, cp2, 0.0))
    c_hi = jnp.where(in1, cp1, jnp.where(in2, cp2, 0.0))
    near_max = c_hi < 0
    near_min = ~near_max & (c_lo > 0)
    s0 = jnp.where(
        near_max,
        hi - jnp.sqrt(jnp.maximum(2 * f_hi / jnp.where(near_max, -c_hi, 1.0), 0.0)),
        jnp.where(near_min, lo + jnp.sqrt(jnp.maximum(-2 * f_lo / jnp.where(near_min, c_lo, 1.0), 0.0)), -1.0),
    )
    s = _halley(U, lo, hi, f_lo, f_hi, s0, steps[1])
    s = jnp.where(start, zero, s)
    # Interior maxima: where G turns from positive to negative.
    m1 = jnp.where(z1_ok & (g0 > 0), up1, -jnp.inf)
    m2 = jnp.where(z1_ok & z2_ok & (gc > 0), up2, jnp.where(~z1_ok & z2_ok & (gc > 0), up1, -jnp.inf))
    return crosses, s, jnp.maximum(m1, m2)
