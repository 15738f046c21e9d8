"""Weight initializers for :meth:`snncomp.Network.connect`.

Each initializer is a small frozen object, called as ``init(shape) -> ndarray``.
Randomness comes only from the explicit ``seed`` (an int) or ``key`` (a JAX PRNG
key), so the same seed always gives the same weights, bit for bit, on every
machine: samples are drawn in float32 with JAX's counter-based PRNG and then
widened to the requested dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import DSLError, InitializerError

__all__ = [
    "Constant",
    "Initializer",
    "KaimingNormal",
    "Normal",
    "Uniform",
    "constant",
    "kaiming_normal",
    "normal",
    "uniform",
    "zeros",
]


class Initializer(Protocol):
    """Anything that maps a shape ``(n_in, n_out)`` to a weight array."""

    def __call__(self, shape: tuple[int, int], dtype: str = "float64") -> np.ndarray: ...


def _key(seed: int | None, key: Any) -> Any:
    import jax

    if (seed is None) == (key is None):
        raise InitializerError(
            "pass exactly one of seed=<int> or key=<jax PRNG key>; snncomp never draws an implicit seed"
        )
    if key is not None:
        return key
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InitializerError(f"seed must be an int, got {type(seed).__name__}")
    return jax.random.key(int(seed))


@dataclass(frozen=True)
class Constant:
    """Every weight equals ``value``."""

    value: float = 0.0

    def __call__(self, shape: tuple[int, int], dtype: str = "float64") -> np.ndarray:
        return np.full(shape, self.value, dtype=dtype)


@dataclass(frozen=True)
class Normal:
    """Weights ~ N(mean, std²), from ``seed`` or ``key``."""

    mean: float = 0.0
    std: float = 1.0
    seed: int | None = None
    key: Any = None

    def __call__(self, shape: tuple[int, int], dtype: str = "float64") -> np.ndarray:
        import jax

        z = np.asarray(jax.random.normal(_key(self.seed, self.key), shape, dtype="float32"))
        return (self.mean + self.std * z.astype(dtype)).astype(dtype)


@dataclass(frozen=True)
class Uniform:
    """Weights ~ U[low, high), from ``seed`` or ``key``."""

    low: float = -1.0
    high: float = 1.0
    seed: int | None = None
    key: Any = None

    def __call__(self, shape: tuple[int, int], dtype: str = "float64") -> np.ndarray:
        import jax

        u = np.asarray(jax.random.uniform(_key(self.seed, self.key), shape, dtype="float32"))
        return (self.low + (self.high - self.low) * u.astype(dtype)).astype(dtype)


@dataclass(frozen=True)
class KaimingNormal:
    """Weights ~ N(mean, (gain / sqrt(n_in))²): variance scaled by the fan-in."""

    gain: float = 1.0
    mean: float = 0.0
    seed: int | None = None
    key: Any = None

    def __call__(self, shape: tuple[int, int], dtype: str = "float64") -> np.ndarray:
        std = self.gain / math.sqrt(max(shape[0], 1))
        return Normal(self.mean, std, self.seed, self.key)(shape, dtype)


def constant(value: float) -> Constant:
    """All weights equal ``value``."""
    return Constant(float(value))


def zeros() -> Constant:
    """All weights zero."""
    return Constant(0.0)


def normal(mean: float = 0.0, std: float = 1.0, *, seed: int | None = None, key: Any = None) -> Normal:
    """Gaussian weights; give ``seed`` or ``key``."""
    _key(seed, key)
    return Normal(float(mean), float(std), seed, key)


def uniform(low: float = -1.0, high: float = 1.0, *, seed: int | None = None, key: Any = None) -> Uniform:
    """Uniform weights in ``[low, high)``; give ``seed`` or ``key``."""
    _key(seed, key)
    if not high > low:
        raise DSLError(f"uniform: need high > low, got low={low}, high={high}")
    return Uniform(float(low), float(high), seed, key)


def kaiming_normal(gain: float = 1.0, mean: float = 0.0, *, seed: int | None = None, key: Any = None) -> KaimingNormal:
    """Gaussian weights with std ``gain / sqrt(fan_in)``; give ``seed`` or ``key``."""
    _key(seed, key)
    return KaimingNormal(float(gain), float(mean), seed, key)
