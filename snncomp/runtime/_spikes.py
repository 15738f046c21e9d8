"""Spike trains and per-population results: ``Spikes``, ``Populations`` (and ``population_problem``).

Also the two value helpers the whole runtime shares: ``is_tracer`` and ``_default_float``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ..errors import InputError, PopulationError


def is_tracer(x: Any) -> bool:
    """Whether ``x`` is traced (inside ``jit``, ``grad``, ``vmap``): then its value is unknown on the host."""
    return isinstance(x, jax.core.Tracer)


_is_tracer = is_tracer  # the runtime's own modules use the private name


def _default_float() -> np.dtype:
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)  # type: ignore[attr-defined]


class Spikes(eqx.Module):
    """Spike trains: ``times`` and ``neurons``, each ``[..., E]``, sorted by time per sample.

    Padding entries have ``times = +inf`` and ``neurons = -1``. Leading axes
    are batch axes. Build with :meth:`from_lists` or :meth:`from_first_spike_times`.
    """

    times: Float[Array, "*batch E"]
    neurons: Int[Array, "*batch E"]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading (batch) axes."""
        return tuple(self.times.shape[:-1])

    @property
    def capacity(self) -> int:
        """Events per sample, padding included (``E``)."""
        return int(self.times.shape[-1])

    def count(self) -> Array:
        """Number of real (non-padding) spikes per sample, ``[...]``."""
        return jnp.sum(jnp.asarray(self.neurons) >= 0, axis=-1)

    @classmethod
    def from_lists(
        cls,
        times: Sequence[float] | Sequence[Sequence[float]],
        neurons: Sequence[int] | Sequence[Sequence[int]],
        *,
        capacity: int | None = None,
        dtype: Any = None,
    ) -> Spikes:
        """Spikes from one sample's lists, or a batch (list of lists), sorted and padded.

        ``capacity`` pads every sample to that many events (default: the longest).
        """
        dtype = np.dtype(dtype) if dtype is not None else _default_float()
        batched = len(times) > 0 and np.ndim(times[0]) == 1
        t_rows = [np.asarray(t, np.float64).reshape(-1) for t in times] if batched else [np.asarray(times, np.float64)]
        n_rows = [np.asarray(n).reshape(-1) for n in neurons] if batched else [np.asarray(neurons)]
        if len(t_rows) != len(n_rows):
            raise InputError(f"Spikes.from_lists: {len(t_rows)} time lists but {len(n_rows)} neuron lists")
        longest = max((len(t) for t in t_rows), default=0)
        cap = longest if capacity is None else capacity
        if cap < longest:
            raise InputError(f"Spikes.from_lists: capacity={capacity} is smaller than the longest sample ({longest})")
        out_t = np.full((len(t_rows), cap), np.inf)
        out_n = np.full((len(t_rows), cap), -1, np.int64)
        for b, (t, n) in enumerate(zip(t_rows, n_rows)):
            if t.shape != n.shape:
                raise InputError(
                    f"Spikes.from_lists: sample {b} has {t.size} times but {n.size} neuron indices; "
                    "give one neuron index per spike time"
                )
            if n.size and not np.issubdtype(n.dtype, np.integer) and not np.all(np.mod(n, 1) == 0):
                raise InputError(f"Spikes.from_lists: sample {b}: neuron indices must be integers, got {n[:5]}")
            order = np.argsort(t, kind="stable")
            out_t[b, : t.size] = t[order]
            out_n[b, : t.size] = n[order]
        if not batched:
            out_t, out_n = out_t[0], out_n[0]
        return cls(times=jnp.asarray(out_t.astype(dtype)), neurons=jnp.asarray(out_n.astype(np.int32)))

    @classmethod
    def from_first_spike_times(cls, first: Any, *, dtype: Any = None) -> Spikes:
        """One spike per neuron at ``first[..., i]`` (``+inf`` or NaN: no spike), sorted; ``E = size``."""
        first = jnp.asarray(first, dtype=dtype if dtype is not None else None)
        if not jnp.issubdtype(first.dtype, jnp.floating):
            first = first.astype(_default_float())
        real = jnp.isfinite(first)
        key = jnp.where(real, first, jnp.inf)
        order = jnp.argsort(key, axis=-1, stable=True)
        times = jnp.take_along_axis(key, order, axis=-1)
        neurons = jnp.where(jnp.isfinite(times), order, -1).astype(jnp.int32)
        return cls(times=times, neurons=neurons)

    def to_first_spike_times(self, size: int) -> Array:
        """The first spike time of each of ``size`` neurons, ``[..., size]`` (``+inf`` if silent)."""
        t = jnp.asarray(self.times)
        n = jnp.asarray(self.neurons)
        hit = n[..., :, None] == jnp.arange(size)
        return jnp.min(jnp.where(hit, t[..., :, None], jnp.inf), axis=-2)

    def to_lists(self) -> Any:
        """Back to lists: ``(times, neurons)`` for one sample, a (nested) list of them for a batch."""
        t = np.asarray(self.times)
        n = np.asarray(self.neurons)

        def rec(t: np.ndarray, n: np.ndarray) -> Any:
            if t.ndim == 1:
                real = n >= 0
                return t[real].tolist(), n[real].astype(int).tolist()
            return [rec(a, b) for a, b in zip(t, n)]

        return rec(t, n)

    def __repr__(self) -> str:
        try:
            total = int(np.sum(np.asarray(self.neurons) >= 0))
            info = f", spikes={total}"
        except Exception:  # traced: no values
            info = ""
        return f"Spikes(batch={self.batch_shape}, capacity={self.capacity}{info})"


class Populations(dict):
    """A ``dict`` of per-population results that names a removed population when asked for it.

    ``removed`` maps the name of each population a pass removed to the reason
    (e.g. ``canonicalize``: it reaches no output). A PyTree like a ``dict``; the
    reasons travel as static data.
    """

    def __init__(self, items: Any = (), removed: Mapping[str, str] | None = None):
        super().__init__(items)
        self.removed: dict[str, str] = dict(removed or {})

    def __missing__(self, key: Any) -> Any:
        raise PopulationError(population_problem(key, self.removed, sorted(self)))


def population_problem(name: Any, removed: Mapping[str, str], available: Sequence[str]) -> str:
    """Why ``name`` is not among ``available``: removed by a pass (and why), or unknown (with a hint)."""
    if name in removed:
        return f"population {name!r} is not in the compiled network: it was {removed[name]}"
    close = difflib.get_close_matches(str(name), list(available), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no population {name!r}{hint}; the result holds {list(available)}"


def _flatten_populations(p: Populations) -> tuple[list, tuple]:
    keys = sorted(p)
    return [p[k] for k in keys], (tuple(keys), tuple(sorted(p.removed.items())))


def _unflatten_populations(aux: tuple, children: Any) -> Populations:
    keys, removed = aux
    return Populations(zip(keys, children), dict(removed))


jax.tree_util.register_pytree_node(Populations, _flatten_populations, _unflatten_populations)
