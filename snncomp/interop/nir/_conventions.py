"""Exporter conventions: the libraries whose NIR export :func:`from_nir` can undo, their default time
steps, and the discrete-time algebra the undoing uses (the per-type mapping is ``_Neurons.neuron_mapping``)."""

from __future__ import annotations

import math

import numpy as np

CONVENTIONS = ("nir", "snntorch", "spyx", "rockpool", "norse", "sinabs")
"""How :func:`from_nir` reads a graph: ``"nir"`` follows NIR's equations literally; the others undo
what that library's exporter writes differently (see ``docs/nir.md``, "Exporter conventions")."""

DEFAULT_DT: dict[str, float | None] = {
    "nir": None,
    "snntorch": 1e-4,  # hard-coded in snntorch.export_nir
    "spyx": 1.0,  # spyx.nir.to_nir(..., dt=1): time constants counted in steps
    "rockpool": None,  # recovered from r = tau exp(-dt / tau) / dt
    "norse": 1e-3,  # norse.torch.to_nir(..., dt=0.001)
    "sinabs": 1e-3,  # Sinabs counts time in steps; this is the step's length in seconds
}
"""Time step [s] each convention assumes when ``dt`` is not given (``None``: not needed, or recovered)."""


def _slow_match(
    fast: np.ndarray, slow: np.ndarray, gain: np.ndarray, tau_slow: np.ndarray, tau_fast: np.ndarray, dt: float
) -> np.ndarray:
    """IR current jump per unit jump of a discrete synapse, matched on the slowly decaying term.

    The discrete response is ``gain (slow^(k+1) - fast^(k+1)) / (slow - fast)`` per unit input (times
    ``fast`` for Rockpool's order), the IR's ``J0 tau_fast / (tau_slow - tau_fast) (slow^k - fast^k)``;
    equal slow terms give ``J0 = gain (tau_slow - tau_fast) / ((slow - fast) tau_fast)``, whose limit for
    equal time constants is ``tau / dt``. Here "slow" and "fast" just name the two decays (either may be
    the slower): the formula is symmetric in that sense.
    """
    diff = slow - fast
    near = np.abs(diff) < 1e-9
    safe = np.where(near, 1.0, diff)
    return np.where(near, tau_slow / dt, gain * (tau_slow - tau_fast) / (safe * tau_fast))


def _rockpool_dt(r: float, tau: float) -> float | None:
    """The ``dt`` with ``r = tau exp(-dt/tau) / dt`` (Rockpool's export), by bisection on x = dt / tau."""
    if not (math.isfinite(r) and math.isfinite(tau) and r > 0 and tau > 0):
        return None
    lo, hi = 1e-12, 50.0  # exp(-x)/x decreases from huge to ~4e-24 over this range
    f = lambda x: math.exp(-x) / x - r  # noqa: E731
    if f(lo) < 0 or f(hi) > 0:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi) * tau
