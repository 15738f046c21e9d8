"""Encoders from values to spike times, and the first-spike decoder.

Latency coding maps a value ``v`` in ``[0, 1]`` to one spike at ``t_early + v * (t_late - t_early)``:
a larger value spikes later (pass ``1 - v`` for the other direction). Time-to-first-spike networks
usually add a *bias* channel, one spike at a fixed time per sample, which gives every hidden
neuron a constant input it can learn to use as an offset.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike
from numpy.typing import DTypeLike

from .runtime import InputError, Spikes

__all__ = ["decode_first_spike", "latency", "latency_times"]


def latency_times(
    values: ArrayLike,
    *,
    t_early: float,
    t_late: float,
    bias_time: float | None = None,
    duplicate: int = 1,
) -> np.ndarray:
    """The spike times of :func:`latency` as a dense ``[batch, channels]`` array (no padding)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise InputError(f"latency: values must be [batch, features] (or [batch]), got shape {v.shape}")
    if not np.all(np.isfinite(v)) or (v.size and (v.min() < 0.0 or v.max() > 1.0)):
        raise InputError("latency: values must be finite and lie in [0, 1] (rescale them first)")
    if not (np.isfinite(t_early) and np.isfinite(t_late) and 0.0 <= t_early <= t_late):
        raise InputError(f"latency: need 0 <= t_early <= t_late, got t_early={t_early}, t_late={t_late}")
    if isinstance(duplicate, bool) or not isinstance(duplicate, (int, np.integer)) or duplicate < 1:
        raise InputError(f"latency: duplicate must be a positive integer, got {duplicate!r}")
    if bias_time is not None and not (np.isfinite(bias_time) and bias_time >= 0.0):
        raise InputError(f"latency: bias_time must be a finite time >= 0, got {bias_time!r}")
    t = t_early + v * (t_late - t_early)
    # Copies of a channel sit next to each other (channel i -> i*d ... i*d + d - 1), so a weight
    # limited in range on hardware can be split over d synapses driven by the same value.
    t = np.repeat(t, duplicate, axis=1)
    if bias_time is not None:
        t = np.concatenate([t, np.full((t.shape[0], 1), float(bias_time))], axis=1)
    return t


def latency(
    values: ArrayLike,
    *,
    t_early: float,
    t_late: float,
    bias_time: float | None = None,
    duplicate: int = 1,
    dtype: DTypeLike = np.float32,
) -> Spikes:
    """Linear latency coding: one spike per channel at ``t_early + value * (t_late - t_early)``.

    ``values`` is ``[batch, features]`` with entries in ``[0, 1]``. Each feature becomes
    ``duplicate`` adjacent channels with the same spike time (more synapses per input, for the
    limited weight range of analog hardware). With ``bias_time`` one more channel, the last one,
    spikes at that time in every sample. Returns :class:`snncomp.Spikes` of shape
    ``[batch, features * duplicate (+ 1)]``, sorted per sample.
    """
    t = latency_times(values, t_early=t_early, t_late=t_late, bias_time=bias_time, duplicate=duplicate)
    return Spikes.from_first_spike_times(t.astype(dtype))


def decode_first_spike(spikes: Spikes, n_classes: int) -> np.ndarray:
    """Class of each sample: the output neuron that spiked first; ``-1`` where none spiked."""
    from .losses import first_spike_class

    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise InputError(f"decode_first_spike: n_classes must be a positive integer, got {n_classes!r}")
    return np.asarray(first_spike_class(spikes.to_first_spike_times(int(n_classes))))
