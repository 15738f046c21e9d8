"""What goes into and comes out of one ``bss2-mock`` run, in the engines' flat layout.

In: the input spikes as ``[batch, events]`` times and global channels (:func:`flat_inputs`), the model
weights as one flat vector (:func:`flat_weights`). Out: the readout buffers per population in model
units (:func:`readout_spikes`), and the error of a run whose buffers overflowed (:func:`raise_overflow`).
Arrays every run passes unchanged are kept on the device (:class:`DeviceConstants`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ....runtime import Recording, raise_if_overflowed
from ._arrays import bucket
from ._engine import BatchResult
from ._placements import Placement

__all__ = ["DeviceConstants", "flat_inputs", "flat_weights", "raise_overflow", "readout_spikes"]


class DeviceConstants:
    """Device arrays kept across runs, made concrete even while a caller's ``jit`` traces the run."""

    def __init__(self) -> None:
        self.arrays: dict[tuple, Array] = {}
        self.last_t_max: tuple[float, Array] | None = None

    def get(self, name: tuple, value: Any, dtype: Any, make: Any = None) -> Array:
        """A device constant kept across runs (``make()`` or ``jnp.asarray(value, dtype)``): no transfer per call."""
        key = (*name, None if dtype is None else np.dtype(dtype).name)
        if key not in self.arrays:
            with jax.ensure_compile_time_eval():  # a concrete array even while a caller's jit traces this run
                self.arrays[key] = make() if make is not None else jnp.asarray(value, dtype)
        return self.arrays[key]

    def t_max(self, t_max: float, dtype: Any) -> Array:
        """``t_max`` as a device scalar (the last value is kept)."""
        if self.last_t_max is None or self.last_t_max[0] != t_max:
            with jax.ensure_compile_time_eval():
                self.last_t_max = (t_max, jnp.asarray(t_max, dtype))
        return self.last_t_max[1]


def flat_inputs(
    placement: Placement,
    inputs: Sequence[tuple[str, int]],
    times: dict,
    neurons: dict,
    n_samples: int,
    dtype: Any,
    min_events: int = 64,
) -> tuple[Array, Array, Array]:
    """Input spikes as ``[batch, events]`` times and global channels (``-1`` padding), both axes padded,
    and the count of invalid input events (``0`` for concrete inputs, checked on the host).

    ``inputs`` are the network's input populations ``(name, size)``. Events are padded to a power of two
    (at least ``min_events``), the batch to a power of two (empty samples): sizes then share compiled
    code. Concrete inputs are assembled on the host.
    """
    ts, chs = [], []
    xp = np if all(isinstance(v, np.ndarray) for v in (*times.values(), *neurons.values())) else jnp
    bad: Any = 0 if xp is np else jnp.zeros((), jnp.int32)  # counted in the program only for traced inputs
    for name, size in inputs:
        t, n = times[name], neurons[name]
        real = n >= 0
        invalid = (n < -1) | (real & ((n >= size) | ~xp.isfinite(t) | (t < 0)))
        if xp is jnp:
            bad = bad + jnp.sum(invalid)
        ts.append(t)
        chs.append(xp.where(real & ~invalid, n + placement.readout.input_offsets[name], -1))
    if not ts:
        ts, chs = [np.full((n_samples, 1), np.inf)], [np.full((n_samples, 1), -1, np.int32)]
    t = xp.concatenate(ts, axis=1)
    ch = xp.concatenate(chs, axis=1)
    q, b_pad = bucket(t.shape[1], min_events), bucket(n_samples, 8)
    t = xp.pad(t, ((0, b_pad - n_samples), (0, q - t.shape[1])), constant_values=np.inf)
    ch = xp.pad(ch, ((0, b_pad - n_samples), (0, q - ch.shape[1])), constant_values=-1)
    if xp is np:
        t, ch = jax.device_put((t.astype(dtype), ch.astype(np.int32)))  # one transfer
        return t, ch, bad
    return jnp.asarray(t, dtype), jnp.asarray(ch, jnp.int32), bad


def input_segments(
    placement: Placement, inputs: Sequence[tuple[str, int]], times: dict
) -> tuple[tuple[int, int, int, int], ...]:
    """Which channels the columns of :func:`flat_inputs`' event array hold: per input population
    ``(first column, end column, first channel, end channel)`` (its buffer, in the same order)."""
    out = []
    col = 0
    for name, size in inputs:
        width = int(np.shape(times[name])[-1])
        ch = int(placement.readout.input_offsets[name])
        out.append((col, col + width, ch, ch + int(size)))
        col += width
    return tuple(out)


def flat_weights(placement: Placement, params: Mapping[str, Any], dtype: Any) -> Array:
    """The model weights of ``params`` as one flat vector in the placement's readout order."""
    ro = placement.readout
    parts = [jnp.ravel(params["weight"][k]) for k in ro.weight_offsets]
    flat = jnp.concatenate(parts) if parts else jnp.zeros(0, dtype)
    return jnp.pad(flat.astype(dtype), (0, ro.weight_length - flat.shape[0]))


def readout_spikes(
    placement: Placement, res: BatchResult, shaped: Callable[[Array], Array]
) -> tuple[dict[str, tuple[Array, Array]], dict[str, Array]]:
    """The readout buffers per population: ``{pop: (times, neurons)}`` (model units, ``[samples, ...]``)
    and ``{pop: overflow}`` (reshaped by ``shaped`` to the batch shape)."""
    spikes: dict[str, tuple[Array, Array]] = {}
    overflow: dict[str, Array] = {}
    for p, (name, off, cap) in enumerate(placement.readout.populations):
        t = res.rec_time[:, off : off + cap] * placement.arrays.tick_model
        spikes[name] = (t, res.rec_index[:, off : off + cap])
        overflow[name] = shaped(res.overflow[:, p])
    return spikes, overflow


def raise_overflow(placement: Placement, rec: Recording) -> None:
    """Raise :class:`~snncomp.runtime.BufferOverflowError` if a readout buffer of ``rec`` overflowed."""
    caps = {name: cap for name, _o, cap in placement.readout.populations}

    def buffer_text(name: str) -> str:
        size = placement.config.populations[name].size
        return f"readout buffer of {caps[name]} ({size} neurons x {caps[name] // max(1, size)} spikes)"

    raise_if_overflowed(
        rec,
        buffer_text,
        lambda _name: (
            "enlarge it with compile(..., target='bss2-mock', spikes_per_neuron=N), or bound the population "
            "with max_spikes"
        ),
    )
