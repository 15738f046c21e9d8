"""Model weights -> the 6-bit synapse weights of an existing placement and routing (no re-routing).

Every physical synapse the ``route`` pass allocated is listed in the configuration's projection map as ``(pre,
post, sign, hemisphere, row, column)``; a weight saturated under ``quantize{saturate=split}`` has several
(*copies*). New model weights are quantized exactly as the ``quantize`` pass does, ``w_hw = round(clip(scale *
factor * w, -63, 63))`` (``factor``: the target neuron's ``NeuronConfig.weight_factor``, 1 except for
instantaneous synapses) with halves away from zero (``saturate=split``: no clip, the magnitude spread over the
copies, ``63`` each plus the remainder), and written into those synapses: the excitatory synapse of ``(pre,
post)`` gets ``max(w_hw, 0)``, the inhibitory one ``max(-w_hw, 0)``. Two things cannot be expressed without
new synapses and are counted: a weight whose sign has no synapse (``split-sign{signs=used}`` allocates only
the signs in use), and, under ``split``, a magnitude beyond its copies (``lost`` and ``saturated``). Synapses
the projection map does not claim keep the configuration's weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..config import HardwareConfig
from ..passes.quantize import round_half_away

__all__ = ["Requantized", "WeightLayout", "requantize_host", "requantize_jax"]


@dataclass(frozen=True)
class _Projection:
    shape: tuple[int, int]
    pre: np.ndarray
    post: np.ndarray
    sign: np.ndarray
    synapse: np.ndarray
    copy: np.ndarray
    copies: np.ndarray
    has_exc: np.ndarray
    has_inh: np.ndarray
    factor: np.ndarray  # per target neuron: the instantaneous-synapse weight factor (1 otherwise)

    def scales(self, scale: float) -> np.ndarray:
        """``[1, targets]``: hardware units per model weight unit of each target column."""
        return scale * self.factor[None, :]


@dataclass(frozen=True)
class WeightLayout:
    """Where each projection's weights live on the chip (from the configuration's projection map)."""

    scale: float
    w_max: int
    split: bool
    base: np.ndarray  # the configuration's synapse weights, flat [hemispheres * rows * columns]
    projections: dict[str, _Projection]

    @classmethod
    def of(cls, config: HardwareConfig, shapes: dict[str, tuple[int, int]], split: bool) -> WeightLayout:
        """Layout of ``config``; ``shapes[key]`` is the ``[source, target]`` shape of every projection."""
        chip = config.chip
        R, C = chip.rows_per_hemisphere, chip.columns
        projections = {}
        for key, shape in shapes.items():
            pm = config.projections.get(key)
            if pm is None:
                continue
            pre, post = np.array(pm.pre, np.int64), np.array(pm.post, np.int64)
            sign = np.array(pm.sign, np.int64)
            syn = (np.array(pm.hemisphere, np.int64) * R + np.array(pm.row, np.int64)) * C + np.array(pm.column)
            group = (pre * shape[1] + post) * 2 + sign
            _, inverse, counts = np.unique(group, return_inverse=True, return_counts=True)
            copies = counts[inverse].astype(np.int64)
            # Copy number of each entry within its (pre, post, sign) group, in projection-map order.
            order = np.argsort(group, kind="stable")
            start = np.searchsorted(group[order], group[order])
            copy = np.empty(len(group), np.int64)
            copy[order] = np.arange(len(group)) - start
            has_exc = np.zeros(shape, bool)
            has_inh = np.zeros(shape, bool)
            has_exc[pre[sign == 0], post[sign == 0]] = True
            has_inh[pre[sign == 1], post[sign == 1]] = True
            target = config.populations.get(pm.target)
            factor = np.ones(shape[1], np.float64)
            if target is not None and len(target.neurons) == shape[1]:
                factor = np.array([config.neurons[k].weight_factor for k in target.neurons], np.float64)
            projections[key] = _Projection(
                shape, pre, post, sign, syn.astype(np.int64), copy, copies, has_exc, has_inh, factor
            )
        base = config.synapse_weights().astype(np.float64).reshape(-1)
        return cls(
            scale=float(config.weight_scale),
            w_max=(1 << config.weight_bits) - 1,
            split=split,
            base=base,
            projections=projections,
        )


@dataclass(frozen=True)
class Requantized:
    """Host result: flat synapse weights and what could not be expressed in the existing routing."""

    synapses: np.ndarray
    saturated: int
    lost: int
    needs_placement: list[str]


def requantize_host(layout: WeightLayout, weights: dict[str, np.ndarray]) -> Requantized:
    """Quantize concrete ``weights`` (float64, per projection key) into ``layout`` (numpy, exact)."""
    out = layout.base.copy()
    saturated = lost = 0
    needs: list[str] = []
    for key, p in layout.projections.items():
        w = np.asarray(weights[key], np.float64)
        x = p.scales(layout.scale) * w
        if layout.split:
            w_hw = round_half_away(x)
        else:
            w_hw = round_half_away(np.clip(x, -layout.w_max, layout.w_max))
            sat = np.abs(x) > layout.w_max
            saturated += int((sat & (p.has_exc | p.has_inh)).sum())
        missing = ((w_hw > 0) & ~p.has_exc) | ((w_hw < 0) & ~p.has_inh)
        # A masked-out synapse has neither sign; only weights the routing knows about can be lost.
        n_lost = int((missing & (p.has_exc | p.has_inh)).sum())
        lost += n_lost
        mag = np.where(p.sign == 0, np.maximum(w_hw[p.pre, p.post], 0), np.maximum(-w_hw[p.pre, p.post], 0))
        if layout.split:
            beyond = mag > p.copies * layout.w_max
            saturated += int(beyond[p.copy == 0].sum())
            if beyond.any():
                needs.append(f"{key}: a weight needs more synapses than it has")
        if n_lost:
            needs.append(f"{key}: {n_lost} weight(s) changed to a sign without synapses")
        out[p.synapse] = np.clip(mag - p.copy * layout.w_max, 0, layout.w_max)
    return Requantized(out, saturated, lost, needs)


def requantize_jax(
    layout: WeightLayout, weights: dict[str, Array], dtype: np.dtype
) -> tuple[Array, dict[str, Array], Array, Array]:
    """Traced version of :func:`requantize_host`: ``(synapses, effective, saturated, lost)``.

    ``effective`` (``sum of signed synapse weights / scale`` per ``(pre, post)``) is what the chip
    realises (the synaptic-current jump; into instantaneous synapses about ``factor`` times the model
    weight); it is returned for the software replay of hardware-in-the-loop gradients. The counts are
    those of :func:`requantize_host` (weights beyond a split weight's copies count as saturated).
    """
    out = jnp.asarray(layout.base.astype(dtype))
    effective = {}
    saturated = jnp.zeros((), jnp.int32)
    lost = jnp.zeros((), jnp.int32)
    for key, p in layout.projections.items():
        w = jnp.asarray(weights[key]).astype(dtype)
        x = jnp.asarray(p.scales(layout.scale).astype(dtype)) * w
        routed = jnp.asarray(p.has_exc | p.has_inh)
        if not layout.split:
            saturated = saturated + jnp.sum((jnp.abs(x) > layout.w_max) & routed)
            x = jnp.clip(x, -layout.w_max, layout.w_max)
        w_hw = jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5)
        missing = ((w_hw > 0) & ~jnp.asarray(p.has_exc)) | ((w_hw < 0) & ~jnp.asarray(p.has_inh))
        lost = lost + jnp.sum(missing & routed)
        pick = w_hw[p.pre, p.post]
        mag = jnp.where(jnp.asarray(p.sign == 0), jnp.maximum(pick, 0), jnp.maximum(-pick, 0))
        if layout.split:
            beyond = (mag > jnp.asarray(p.copies * layout.w_max)) & jnp.asarray(p.copy == 0)
            saturated = saturated + jnp.sum(beyond)
        val = jnp.clip(mag - jnp.asarray(p.copy * layout.w_max), 0, layout.w_max)
        out = out.at[jnp.asarray(p.synapse)].set(val)
        signed = jnp.where(jnp.asarray(p.sign == 0), val, -val) / layout.scale
        effective[key] = jnp.zeros(p.shape, dtype).at[jnp.asarray(p.pre), jnp.asarray(p.post)].add(signed)
    return out, effective, saturated.astype(jnp.int32), lost.astype(jnp.int32)
