"""``quantize``: model weights -> signed hardware weights ``w_hw = round(clip(scale * w, -63, 63))``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from ....errors import SnnCompError
from ....passes import Pass, PassContext, annotate_edge, annotate_graph, register
from .._annotations import Quantization, Quantized, SignSplit
from .._problem import chip_of
from ..errors import ResourceError, Violation

__all__ = ["Quantize", "round_half_away"]


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (hxtorch's ``±0.5`` then truncate)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@register
@dataclass(frozen=True)
class Quantize(Pass):
    """Quantize every weight to the chip's synapse resolution.

    ``w_hw = round(clip(scale * w, -w_max, w_max))`` with ``w_max = 2**bits - 1`` (63), rounding halves
    away from zero; the sign goes to the row (``split-sign``), the magnitude to the synapse. The effective
    weight is ``w_hw / scale``, so the error of an unsaturated weight is at most half a step,
    ``0.5 / scale``. ``scale`` defaults to the chip's calibrated 58 hardware units per model unit, adjusted
    to the ``v_scale`` of ``map-parameters`` (``58 * v_scale / 70``). ``saturate=clip`` clips larger
    magnitudes (and counts them); ``saturate=split`` keeps them and spends ``ceil(|w_hw| / w_max)``
    synapses (rows) on each, ``w_max`` each plus the remainder. ``bits`` may be lowered below the chip's 6
    to emulate coarser weights.

    Graph annotation ``quantization`` (totals); edge annotation ``quant`` (``w_hw`` per synapse).
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
        max_err = 0.0
        problems: list[Violation] = []
        for u, v, key, data in g.edges(keys=True, data=True):
            signs: SignSplit | None = data["ann"].get("signs")
            if signs is None:
                raise SnnCompError(f"projection '{key}' has no 'signs' annotation; run split-sign before quantize")
            edge = data["ir"]
            used = signs.exc | signs.inh
            x = np.where(used, scale * edge.weight.astype(np.float64), 0.0)
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
            err = float(np.abs(w_hw / scale - edge.weight)[ok].max()) if ok.any() else 0.0
            w_hw.flags.writeable = False
            annotate_edge(
                g,
                u,
                v,
                key,
                quant=Quantized(scale=scale, w_max=w_max, w_hw=w_hw, saturated=sat, split_extra=extra, max_error=err),
            )
            n_weights += int(used.sum())
            saturated += sat
            split_extra += extra
            max_err = max(max_err, err)
            if sat:
                ctx.remark(f"{key}: {sat} of {int(used.sum())} weights saturated at |w_hw| = {w_max}")
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
        )
        annotate_graph(g, quantization=summary)
        ctx.remark(summary.text())
        return g
