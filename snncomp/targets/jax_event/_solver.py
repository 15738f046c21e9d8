"""Next-spike solvers: the exact time of a neuron's next upward threshold crossing.

From a free state ``(u0, I0)`` (``u = v - v_leak``, see ``_dynamics``) the
membrane follows ``u(s) = a exp(-s/tau_mem) + b exp(-s/tau_syn)``, a sum of two
exponentials, so it has at most one extremum for ``s > 0``. With
``theta = v_threshold - v_leak > 0`` this gives an exact existence test:

* No crossing unless the membrane rises with a positive current:
  ``I0 > 0`` and ``I0 > u0`` (if ``I <= 0`` throughout, ``u`` never exceeds
  ``max(u0, 0) < theta``).
* Then the peak is where ``u = I`` (``du/dt = 0``)::

      q = 1 - u0 / I0,   r = tau_syn / tau_mem,   w = (r - 1) q
      s* = tau_syn * q * log1p(w) / w          (no peak when w <= -1)
      u_max = u(s*) = I0 exp(-q log1p(w) / w)

* A crossing exists iff ``u_max >= theta`` (**touching counts**). On ``[0, s*]``
  the membrane is increasing and strictly concave (``tau_mem u'' = -u' - I/tau_syn < 0``),
  so the crossing is unique there and is the root of ``u(s) = theta`` in ``(0, s*]``.
* If already ``u0 >= theta`` (possible only by rounding right at a crossing)
  the crossing is now: ``s = 0``.

**Grazing.** When the peak touches the threshold (``u_max = theta`` in the
solver's arithmetic) the spike is reported at the peak time ``s*``; when it stays
below, there is no spike. The decision is a pure function of the state, so it
is deterministic, and every solver below makes it from the same peak formula.
Near grazing the crossing time is ill-conditioned (it moves like
``sqrt(theta - u_max)``), so there a rounding-level change of the state can add
or remove a spike; away from it the time is accurate to about 1e-13 (float64)
and 1e-6 (float32) relative.

Three final solvers share that test:

* :class:`QuadraticSolver` (``tau_mem = 2 tau_syn``): with ``x = exp(-s/tau_mem)``
  the membrane is ``(u0 + I0) x - I0 x^2``, a quadratic; closed form.
* :class:`LambertSolver` (``tau_mem = tau_syn``): ``u = (u0 + I0 s/tau) exp(-s/tau)``,
  solved through the principal branch of Lambert's W (``y + exp(-y) = m``, Halley).
* :class:`BracketedNewtonSolver` (any ratio): Newton from the left end of the
  bracket ``[0, s*]`` and the chord from the right; by concavity Newton never
  overshoots and the chord never undershoots, so the bracket always holds the
  root; a bisection step replaces the chord when the bracket shrinks by less
  than half.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._dynamics import NeuronParams, free_evolve, log1p_over

__all__ = [
    "AbstractCrossingSolver",
    "BracketedNewtonSolver",
    "JumpSolver",
    "LambertSolver",
    "Peak",
    "QuadraticSolver",
    "choose_solver",
]


class Peak(eqx.Module):
    """The existence test: does the free membrane reach threshold, and when does it peak."""

    exists: Array
    s_star: Array
    """Time of the peak (finite where ``exists``)."""


class AbstractCrossingSolver(eqx.Module):
    """Time ``s`` until the next upward threshold crossing of freely evolving neurons."""

    name: ClassVar[str]
    polish_default: ClassVar[bool] = False

    def peak(self, u0: Array, i0: Array, nrn: NeuronParams) -> Peak:
        """Existence of a crossing (``u_max >= theta``) and the peak time ``s*`` (any ratio)."""
        rising = (i0 > 0) & (i0 > u0)
        i_safe = jnp.where(rising, i0, 1.0)
        q = jnp.where(rising, (i0 - u0) / i_safe, 1.0)
        w = (nrn.tau_syn / nrn.tau_mem - 1.0) * q
        has_max = rising & (w > -1.0)
        ql = q * log1p_over(jnp.where(has_max, w, 0.0))
        exists = has_max & (i_safe * jnp.exp(-ql) >= nrn.theta)
        return Peak(exists=exists, s_star=jnp.where(has_max, nrn.tau_syn * ql, jnp.inf))

    def peak_within(self, u0: Array, i0: Array, span: Array, nrn: NeuronParams, decay: Array | None = None) -> Array:
        """Does a crossing exist with its peak at most ``span`` after the start? (``exists & s* <= span``).

        ``decay``, if known, is ``exp(-span / tau_mem)`` (closed forms can use it instead of a logarithm).
        """
        del decay
        pk = self.peak(u0, i0, nrn)
        return pk.exists & (pk.s_star <= span)

    def order_key(self, u0: Array, i0: Array, nrn: NeuronParams) -> Array | None:
        """A key per neuron that orders the crossing times without computing them, or None.

        Where ``tau_mem`` is shared, a larger key means an earlier crossing (``u0 >= theta``: the
        largest), and a negative key means none. An event loop needs only the earliest crossing of
        a population: with a key it finds that neuron with cheap arithmetic and solves for one time.
        """
        del u0, i0, nrn
        return None

    @abc.abstractmethod
    def root(self, u0: Array, i0: Array, nrn: NeuronParams, peak: Peak) -> Array:
        """The root of ``u(s) = theta`` in ``(0, s*]``, valid where ``peak.exists`` (inputs there are sanitized)."""

    def crossing(self, u0: Array, i0: Array, nrn: NeuronParams, *, polish: bool | None = None) -> Array:
        """Time until the next crossing: ``0`` if ``u0 >= theta``, ``+inf`` if none.

        ``polish`` adds one Newton step on the result. Its divisor is held
        constant for autodiff, so the derivative of the returned time is the
        implicit-function one, ``ds/dp = -(du/dp) / (du/ds)``, whatever the
        solver did to find the root.
        """
        polish = self.polish_default if polish is None else polish
        above = u0 >= nrn.theta
        pk = self.peak(u0, i0, nrn)
        ok = pk.exists & ~above
        # Sanitized inputs where there is no root keep every branch finite (and gradients NaN-free).
        u_s = jnp.where(ok, u0, 0.0)
        i_s = jnp.where(ok, i0, 2.0 * nrn.theta + 1.0)
        pk_s = Peak(exists=ok, s_star=jnp.where(ok, pk.s_star, 1.0))
        # With polish the Newton step below carries the implicit-function derivative, so the root
        # search itself (possibly a while_loop, which reverse mode cannot differentiate) sees constants.
        root_in = lax.stop_gradient((u_s, i_s, pk_s)) if polish else (u_s, i_s, pk_s)
        s = jnp.clip(self.root(*root_in[:2], nrn, root_in[2]), 0.0, pk_s.s_star)
        if polish:
            s0 = lax.stop_gradient(s)
            u, i = free_evolve(u_s, i_s, s0, nrn)
            slope = (i - u) / nrn.tau_mem
            good = ok & (slope > 0)
            step = (u - nrn.theta) / lax.stop_gradient(jnp.where(good, slope, 1.0))
            s = jnp.clip(s0 - jnp.where(good, step, 0.0), 0.0, pk_s.s_star)
        return jnp.where(above, 0.0, jnp.where(ok, s, jnp.inf))


class QuadraticSolver(AbstractCrossingSolver):
    """Closed form for ``tau_mem = 2 tau_syn``.

    With ``x = exp(-s/tau_mem)``: ``u = (u0 + I0) x - I0 x^2``, peak at
    ``x* = (u0 + I0) / (2 I0)`` with ``u_max = (u0 + I0)^2 / (4 I0)``. The crossing
    is the larger root of ``I0 x^2 - (u0 + I0) x + theta = 0``; written as
    ``1 - x = 2 (theta - u0) / ((I0 - u0) + sqrt(D))``, ``D = (u0 + I0)^2 - 4 I0 theta``,
    so that ``s = -tau_mem log1p(-(1 - x))`` has no cancellation even for tiny ``s``.
    """

    name: ClassVar[str] = "quadratic (tau_mem = 2 tau_syn)"

    def peak(self, u0: Array, i0: Array, nrn: NeuronParams) -> Peak:
        rising = (i0 > 0) & (i0 > u0)
        p = u0 + i0
        has_max = rising & (p > 0)
        i_safe = jnp.where(has_max, i0, 1.0)
        p_safe = jnp.where(has_max, p, 1.0)
        exists = has_max & (p_safe * p_safe >= 4.0 * i_safe * nrn.theta)
        s_star = -nrn.tau_mem * jnp.log(p_safe / (2.0 * i_safe))
        return Peak(exists=exists, s_star=jnp.where(has_max, s_star, jnp.inf))

    def peak_within(self, u0: Array, i0: Array, span: Array, nrn: NeuronParams, decay: Array | None = None) -> Array:
        # s* <= span  <=>  x* >= exp(-span / tau_mem): no logarithm per neuron and interval.
        rising = (i0 > 0) & (i0 > u0)
        p = u0 + i0
        has_max = rising & (p > 0)
        i_safe = jnp.where(has_max, i0, 1.0)
        exists = has_max & (p * p >= 4.0 * i_safe * nrn.theta)
        decay = jnp.exp(-span / nrn.tau_mem) if decay is None else decay
        return exists & (p >= 2.0 * i_safe * decay)

    def order_key(self, u0: Array, i0: Array, nrn: NeuronParams) -> Array:
        # The key is x = exp(-s / tau_mem) of the crossing (the larger root, clipped to the peak x*):
        # one square root per neuron, where the time itself needs two logarithms more.
        above = u0 >= nrn.theta
        rising = (i0 > 0) & (i0 > u0)
        p = u0 + i0
        has_max = rising & (p > 0)
        i_s = jnp.where(has_max, i0, 1.0)
        p_s = jnp.where(has_max, p, 1.0)
        ok = has_max & (p_s * p_s >= 4.0 * i_s * nrn.theta) & ~above
        u_s = jnp.where(ok, u0, 0.0)
        i_s = jnp.where(ok, i_s, 2.0 * nrn.theta + 1.0)
        p_s = u_s + i_s
        disc = jnp.maximum(p_s * p_s - 4.0 * i_s * nrn.theta, 0.0)
        one_minus_x = 2.0 * (nrn.theta - u_s) / ((i_s - u_s) + jnp.sqrt(disc))
        x = jnp.maximum(1.0 - jnp.minimum(one_minus_x, 1.0), p_s / (2.0 * i_s))
        return jnp.where(above, 1.0, jnp.where(ok, x, -1.0))

    def root(self, u0: Array, i0: Array, nrn: NeuronParams, peak: Peak) -> Array:
        p = u0 + i0
        disc = jnp.maximum(p * p - 4.0 * i0 * nrn.theta, 0.0)
        one_minus_x = 2.0 * (nrn.theta - u0) / ((i0 - u0) + jnp.sqrt(disc))
        return -nrn.tau_mem * jnp.log1p(-jnp.minimum(one_minus_x, 1.0))


class LambertSolver(AbstractCrossingSolver):
    """Closed form for ``tau_mem = tau_syn = tau`` via Lambert's W.

    ``(u0 + I0 Y) exp(-Y) = theta`` with ``Y = s / tau``. Put ``Z = Y + u0/I0`` and
    ``Z = exp(-y)``: then ``y + exp(-y) = m`` with ``m - 1 = log(I0/theta) - q >= 0``
    (``q = 1 - u0/I0``; ``m = 1`` is grazing). ``y >= 0`` is found by Halley's
    method from the series ``y ~ sqrt(2(m-1)) + (m-1)/3`` (small ``m - 1``) or
    ``y ~ m - exp(-m)`` (large); then ``s = tau (exp(-y) - u0/I0)``, followed by
    one Newton polish step against the cancellation in that difference.
    """

    name: ClassVar[str] = "lambert-w (tau_mem = tau_syn)"
    polish_default: ClassVar[bool] = True
    iterations: int = eqx.field(static=True, default=4)

    def root(self, u0: Array, i0: Array, nrn: NeuronParams, peak: Peak) -> Array:
        ratio = u0 / i0
        d = jnp.maximum(jnp.log(i0 / nrn.theta) - (1.0 - ratio), 0.0)
        m = 1.0 + d
        y = jnp.where(d < 1.0, jnp.sqrt(2.0 * d) + d / 3.0, m - jnp.exp(-m))

        def halley(_: int, y: Array) -> Array:
            e = jnp.exp(-y)
            g = y + jnp.expm1(-y) - d
            g1 = -jnp.expm1(-y)
            den = 2.0 * g1 * g1 - g * e
            step = jnp.where(den > 0, 2.0 * g * g1 / jnp.where(den > 0, den, 1.0), 0.0)
            return jnp.maximum(y - step, 0.0)

        y = lax.fori_loop(0, self.iterations, halley, y)
        return nrn.tau_mem * (jnp.exp(-y) - ratio)


class BracketedNewtonSolver(AbstractCrossingSolver):
    """Safeguarded root solver for any ``tau_mem / tau_syn``.

    Bracket ``[lo, hi] = [0, s*]`` (``f(lo) < 0 <= f(hi)``, ``f = u - theta``, ``f``
    increasing and concave). Each iteration probes the Newton point from ``lo``
    (a lower bound, by concavity) and the chord point between ``lo`` and ``hi``
    (an upper bound), or the midpoint when the previous iteration shrank the
    bracket by less than half; both probes tighten the bracket. Stops when
    ``hi - lo <= rtol * hi`` or after ``max_iterations``.
    """

    name: ClassVar[str] = "bracketed-newton (any ratio)"
    rtol: float = eqx.field(static=True, default=0.0)
    max_iterations: int = eqx.field(static=True, default=100)

    def root(self, u0: Array, i0: Array, nrn: NeuronParams, peak: Peak) -> Array:
        rtol = self.rtol or 16.0 * float(jnp.finfo(u0.dtype).eps)
        theta, tau_mem = nrn.theta, nrn.tau_mem

        def f_and_slope(s: Array) -> tuple[Array, Array]:
            u, i = free_evolve(u0, i0, s, nrn)
            return u - theta, (i - u) / tau_mem

        lo = jnp.zeros_like(u0)
        hi = peak.s_star
        f_lo = u0 - theta
        d_lo = (i0 - u0) / tau_mem
        f_hi, _ = f_and_slope(hi)
        f_hi = jnp.maximum(f_hi, 0.0)  # exists => u(s*) >= theta; rounding must not break the bracket
        done = (hi - lo) <= rtol * hi
        state = (lo, hi, f_lo, d_lo, f_hi, jnp.zeros_like(done), done, jnp.asarray(0))

        def cond(st: tuple) -> Array:
            return (~jnp.all(st[6])) & (st[7] < self.max_iterations)

        def body(st: tuple) -> tuple:
            lo, hi, f_lo, d_lo, f_hi, slow, done, it = st
            width = hi - lo
            newton = lo - f_lo / jnp.where(d_lo > 0, d_lo, 1.0)
            newton = jnp.where(d_lo > 0, newton, lo + 0.5 * width)
            denom = f_hi - f_lo
            chord = lo - f_lo * width / jnp.where(denom > 0, denom, 1.0)
            second = jnp.where(slow | (denom <= 0), lo + 0.5 * width, chord)
            newton = jnp.clip(newton, lo, hi)
            second = jnp.clip(second, lo, hi)
            f_n, d_n = f_and_slope(newton)
            f_s, d_s = f_and_slope(second)
            # Tighten with both probes: the largest point below threshold, the smallest at or above.
            lo_n = f_n < 0
            lo_s = f_s < 0
            new_lo, new_flo, new_dlo = lo, f_lo, d_lo
            new_lo, new_flo, new_dlo = (
                jnp.where(lo_n & (newton > new_lo), newton, new_lo),
                jnp.where(lo_n & (newton > new_lo), f_n, new_flo),
                jnp.where(lo_n & (newton > new_lo), d_n, new_dlo),
            )
            new_lo, new_flo, new_dlo = (
                jnp.where(lo_s & (second > new_lo), second, new_lo),
                jnp.where(lo_s & (second > new_lo), f_s, new_flo),
                jnp.where(lo_s & (second > new_lo), d_s, new_dlo),
            )
            new_hi, new_fhi = hi, f_hi
            new_hi, new_fhi = (
                jnp.where(~lo_n & (newton < new_hi), newton, new_hi),
                jnp.where(~lo_n & (newton < new_hi), f_n, new_fhi),
            )
            new_hi, new_fhi = (
                jnp.where(~lo_s & (second < new_hi), second, new_hi),
                jnp.where(~lo_s & (second < new_hi), f_s, new_fhi),
            )
            new_width = new_hi - new_lo
            new_slow = new_width > 0.5 * width
            new_done = done | (new_width <= rtol * new_hi)
            keep = done
            out = (
                jnp.where(keep, lo, new_lo),
                jnp.where(keep, hi, new_hi),
                jnp.where(keep, f_lo, new_flo),
                jnp.where(keep, d_lo, new_dlo),
                jnp.where(keep, f_hi, new_fhi),
                jnp.where(keep, slow, new_slow),
                new_done,
                it + 1,
            )
            return out

        lo, hi, f_lo, d_lo, *_ = lax.while_loop(cond, body, state)
        # Final Newton step from the lower bound, kept inside the bracket.
        newton = lo - f_lo / jnp.where(d_lo > 0, d_lo, 1.0)
        return jnp.where(d_lo > 0, jnp.clip(newton, lo, hi), 0.5 * (lo + hi))


class JumpSolver(AbstractCrossingSolver):
    """Instantaneous synapses (``lif`` with ``tau_syn = 0``, ``if``): the current is always 0.

    Between inputs the membrane only relaxes towards its (biased) rest, ``u(s) = u0 exp(-s/tau_mem)``,
    or drifts, ``u(s) = u0 + drift s`` (``if``). So it crosses threshold either at an input (the jump
    leaves ``u0 >= theta``: the crossing is now) or, with a bias beyond threshold, in closed form:
    ``s = tau_mem log(u0 / theta)`` when the rest lies above threshold (``theta < 0`` measured from it),
    ``s = (theta - u0) / drift`` for ``drift > 0``. Both are exact and differentiable as written.
    """

    name: ClassVar[str] = "jump (instantaneous synapses, closed form)"

    def _free_crossing(self, u0: Array, nrn: NeuronParams) -> Array:
        leaky = jnp.isfinite(nrn.tau_mem)
        tonic = leaky & (nrn.theta < 0) & (u0 < nrn.theta)
        ratio = jnp.where(tonic, u0 / jnp.where(tonic, nrn.theta, 1.0), 2.0)
        s_leak = jnp.where(tonic, jnp.where(leaky, nrn.tau_mem, 1.0) * jnp.log(ratio), jnp.inf)
        rising = ~leaky & (nrn.drift > 0)
        s_drift = jnp.where(rising, (nrn.theta - u0) / jnp.where(rising, nrn.drift, 1.0), jnp.inf)
        return jnp.where(leaky, s_leak, s_drift)

    def peak(self, u0: Array, i0: Array, nrn: NeuronParams) -> Peak:
        s = self._free_crossing(u0, nrn)
        return Peak(exists=jnp.isfinite(s) | (u0 >= nrn.theta), s_star=jnp.where(u0 >= nrn.theta, 0.0, s))

    def peak_within(self, u0: Array, i0: Array, span: Array, nrn: NeuronParams, decay: Array | None = None) -> Array:
        del decay
        return (u0 >= nrn.theta) | (self._free_crossing(u0, nrn) <= span)

    def root(self, u0: Array, i0: Array, nrn: NeuronParams, peak: Peak) -> Array:
        return self._free_crossing(u0, nrn)

    def crossing(self, u0: Array, i0: Array, nrn: NeuronParams, *, polish: bool | None = None) -> Array:
        del i0, polish
        above = u0 >= nrn.theta
        return jnp.where(above, 0.0, self._free_crossing(jnp.where(above, nrn.theta - 1.0, u0), nrn))


def choose_solver(tau_mem: np.ndarray, tau_syn: np.ndarray) -> AbstractCrossingSolver:
    """The cheapest exact solver for a population's time constants (chosen at compile time).

    Closed forms are used only when the ratio holds for every neuron to 1e-12
    (relative); anything else gets the bracketed Newton solver, which is exact for every ratio.
    """
    tau_mem = np.asarray(tau_mem, np.float64)
    tau_syn = np.asarray(tau_syn, np.float64)
    if np.all(tau_syn == 0) or np.all(np.isinf(tau_mem)):
        return JumpSolver()
    if np.allclose(tau_mem, 2.0 * tau_syn, rtol=1e-12, atol=0.0):
        return QuadraticSolver()
    if np.allclose(tau_mem, tau_syn, rtol=1e-12, atol=0.0):
        return LambertSolver()
    return BracketedNewtonSolver()
