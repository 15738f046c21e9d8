"""``quantize``: model weights -> signed hardware weights ``w_hw = round(clip(scale * w, -63, 63))``."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from types import FrameType
from typing import Literal

import networkx as nx
import numpy as np

from ....errors import SnnCompError
from ....passes import Pass, PassContext, annotate_edge, annotate_graph, register
from .._annotations import Quantization, Quantized, SignSplit
from .._problem import chip_of
from ..errors import ResourceError, Violation, WeightSaturationWarning

__all__ = ["Quantize", "WeightSaturationWarning", "round_half_away"]


@dataclass(frozen=True)
class _Saturation:
    """The weights of one projection clipped by more than one step, and the worst of them."""

    key: str
    count: int
    weights: int
    index: tuple[int, int]
    weight: float
    effective: float
    factor: float = 1.0  # the largest instantaneous-synapse weight factor of the target population
    target: str = ""


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (hxtorch's ``±0.5`` then truncate)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@register
@dataclass(frozen=True)
class Quantize(Pass):
    """Quantize every weight to the chip's synapse resolution.

    ``w_hw = round(clip(scale * w, -w_max, w_max))`` with ``w_max = 2**bits - 1`` (63), rounding halves
    away from zero (``scale * factor * w`` into a population with instantaneous synapses, ``factor`` its
    ``map-parameters`` weight factor per target neuron); the sign goes to the row (``split-sign``), the
    magnitude to the synapse. The effective weight is ``w_hw / scale``, so the error of an unsaturated
    weight is at most half a step, ``0.5 / scale`` (``/ factor`` in the model's units of an instantaneous
    synapse). ``scale`` defaults to the chip's calibrated 58 hardware units per model unit, adjusted
    to the ``v_scale`` of ``map-parameters`` (``58 * v_scale / 70``). ``saturate=clip`` clips larger
    magnitudes (and counts them); ``saturate=split`` keeps them and spends ``ceil(|w_hw| / w_max)``
    synapses (rows) on each, ``w_max`` each plus the remainder. ``bits`` may be lowered below the chip's 6
    to emulate coarser weights.

    Graph annotation ``quantization`` (totals); edge annotation ``quant`` (``w_hw`` per synapse). Clipped
    weights are counted with their largest error; when a weight is clipped by more than one step, one
    :class:`WeightSaturationWarning` per run names the projections, the chip's range and the options.
    """

    name = "quantize"
    requires = ("sign-split",)
    ensures = ("quantized",)

    scale: float | None = None
    bits: int = 6
    saturate: Literal["clip", "split"] = "clip"

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        chip = chip_of(g, ctx.options)
        if not 1 <= self.bits <= chip.weight_bits:
            raise SnnCompError(f"quantize{{bits={self.bits}}}: the chip's synapses have 1..{chip.weight_bits} bits")
        scale = self.scale
        if scale is None:
            pmap = g.graph["ann"].get("hw_params")
            v_scale = pmap.v_scale if pmap is not None else chip.v_scale
            scale = chip.weight_scale * v_scale / chip.weight_scale_reference
        if not (scale > 0 and np.isfinite(scale)):
            raise SnnCompError(f"quantize{{scale={scale}}}: must be a positive number")
        w_max = (1 << self.bits) - 1
        n_weights = saturated = split_extra = 0
        max_err = sat_err = 0.0
        problems: list[Violation] = []
        far: list[_Saturation] = []  # projections with weights clipped by more than one step
        for u, v, key, data in g.edges(keys=True, data=True):
            signs: SignSplit | None = data["ann"].get("signs")
            if signs is None:
                raise SnnCompError(f"projection '{key}' has no 'signs' annotation; run split-sign before quantize")
            edge = data["ir"]
            used = signs.exc | signs.inh
            # Instantaneous synapses (map-parameters' weight_factor of the target): per target column.
            hw = g.nodes[v]["ann"].get("hw")
            factor = getattr(hw, "weight_factor", None)
            col_scale = scale if factor is None else scale * np.asarray(factor, np.float64)[None, :]
            x = np.where(used, col_scale * edge.weight.astype(np.float64), 0.0)
            over = np.abs(x) > w_max
            if self.saturate == "clip":
                w_hw = round_half_away(np.clip(x, -w_max, w_max))
                sat = int(over.sum())
                extra = 0
            else:
                w_hw = round_half_away(x)
                sat = 0
                copies = np.maximum(1, np.ceil(np.abs(w_hw) / w_max))
                extra = int((copies - 1)[used].sum())
                worst = float(copies.max()) if copies.size else 1.0
                if worst > chip.rows_per_hemisphere:
                    i, j = np.unravel_index(int(np.argmax(copies)), copies.shape)
                    problems.append(
                        Violation(
                            f"synapses for weight {key}[{i},{j}]",
                            worst,
                            chip.rows_per_hemisphere,
                            (key,),
                            check=7,
                            detail=f"w={float(edge.weight[i, j]):g} is {float(w_hw[i, j]):g} hardware units",
                            hint="lower quantize{scale} or use saturate=clip",
                        )
                    )
                    continue
            w_hw = w_hw.astype(np.int64)
            # A weight whose sign has no slot (signs=used never does this) would be lost: fail loudly.
            lost = ((w_hw > 0) & ~signs.exc) | ((w_hw < 0) & ~signs.inh)
            if lost.any():
                i, j = np.argwhere(lost)[0]
                raise SnnCompError(f"projection '{key}'[{i},{j}]: weight sign has no slot; re-run split-sign")
            ok = used & ~over
            error = np.abs(w_hw / col_scale - edge.weight)
            err = float(error[ok].max()) if ok.any() else 0.0
            clipped = used & over if self.saturate == "clip" else np.zeros_like(used)
            s_err = float(error[clipped].max()) if clipped.any() else 0.0
            beyond = clipped & (error > 1.0 / col_scale)
            if beyond.any():
                i, j = np.unravel_index(int(np.argmax(np.where(beyond, error, -1.0))), error.shape)
                far.append(
                    _Saturation(
                        key=str(key),
                        count=int(beyond.sum()),
                        weights=int(used.sum()),
                        index=(int(i), int(j)),
                        weight=float(edge.weight[i, j]),
                        effective=float(w_hw[i, j]) / float(np.broadcast_to(col_scale, w_hw.shape)[i, j]),
                        factor=1.0 if factor is None else float(np.max(factor)),
                        target=str(v),
                    )
                )
            w_hw.flags.writeable = False
            annotate_edge(
                g,
                u,
                v,
                key,
                quant=Quantized(
                    scale=scale,
                    w_max=w_max,
                    w_hw=w_hw,
                    saturated=sat,
                    split_extra=extra,
                    max_error=err,
                    saturation_error=s_err,
                    factor=None if factor is None else np.asarray(factor, np.float64).copy(),
                ),
            )
            n_weights += int(used.sum())
            saturated += sat
            split_extra += extra
            max_err = max(max_err, err)
            sat_err = max(sat_err, s_err)
            if sat:
                ctx.remark(
                    f"{key}: {sat} of {int(used.sum())} weights saturated at |w_hw| = {w_max} "
                    f"(largest error {s_err:.3g})"
                )
        if problems:
            raise ResourceError("weights too large to split", problems)
        summary = Quantization(
            scale=scale,
            bits=self.bits,
            saturate=self.saturate,
            weights=n_weights,
            saturated=saturated,
            split_extra=split_extra,
            max_error=max_err,
            saturation_error=sat_err,
        )
        annotate_graph(g, quantization=summary)
        ctx.remark(summary.text())
        if far:
            warnings.warn(_saturation_message(far, w_max, scale), WeightSaturationWarning, stacklevel=_user_level())
        return g


def _saturation_message(far: list[_Saturation], w_max: int, scale: float) -> str:
    """One warning for every projection with weights clipped by more than one step."""
    bound = w_max / scale
    count = sum(f.count for f in far)
    total = sum(f.weights for f in far)
    parts = []
    for f in far[:5]:
        i, j = f.index
        inst = (
            f", weights into '{f.target}' scaled by up to {f.factor:.4g} for its instantaneous synapses (bound "
            f"+-{w_max / (scale * f.factor):.4g})"
            if f.factor != 1.0
            else ""
        )
        parts.append(
            f"'{f.key}': {f.count} of {f.weights} weights, worst w={f.weight:.4g} at [{i}, {j}] realised as "
            f"{f.effective:.4g} (error {abs(f.weight - f.effective):.3g}){inst}"
        )
    if len(far) > 5:
        parts.append(f"and {len(far) - 5} more projection(s)")
    largest = max(abs(f.weight) for f in far)
    fit = min(w_max / (abs(f.weight) * f.factor) for f in far)
    return (
        f"quantize: {count} of {total} weights in {len(far)} projection(s) lie beyond the chip's weight range "
        f"by more than one step (1/scale = {1.0 / scale:.3g}) and were clipped, so the chip computes a "
        f"different network: the largest weight a synapse realises is +-{bound:.4g} model units ({w_max} hardware "
        f"units at scale={scale:g}); " + "; ".join(parts) + ". To fix: keep the weights within +-"
        f"{bound:.4g} (clip them in training, or scale the network's weights down), or compile with "
        f"saturate='split' (pass option quantize{{saturate=split}}: large weights spend extra synapse rows), or "
        f"with a lower scale (scale={fit:.4g} or less fits |w| = {largest:.4g}: coarser steps of 1/scale; pass "
        f"option quantize{{scale=...}})"
    )


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _user_level() -> int:
    """The ``stacklevel`` of the first caller outside snncomp, so the warning points at the user's line."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR + os.sep):
        level += 1
        frame = frame.f_back
    return level
