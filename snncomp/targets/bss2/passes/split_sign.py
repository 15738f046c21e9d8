"""``split-sign``: signed projections -> excitatory and inhibitory synapse sets (a row has one sign)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import networkx as nx
import numpy as np

from ....passes import Pass, PassContext, annotate_edge, register
from .._annotations import SignSplit

__all__ = ["SplitSign"]


@register
@dataclass(frozen=True)
class SplitSign(Pass):
    """Decide, per synapse, whether it needs an excitatory slot, an inhibitory slot, or both.

    On BrainScaleS-2 the sign lives in the synapse row (the driver's row mode), not in the synapse,
    and each neuron has separate excitatory and inhibitory inputs. ``signs=both`` (default) gives every
    synapse of the projection's mask one slot of each sign, as hxtorch does for dense layers: the weight
    may then change sign during training without re-routing, at the price of two rows per source.
    ``signs=used`` gives each synapse only the sign of its current weight and none to weights that are
    exactly 0 (about half the rows; re-route when a sign flips).
    """

    name = "split-sign"
    ensures = ("sign-split",)

    signs: Literal["both", "used"] = "both"

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        total = [0, 0]
        for u, v, key, data in g.edges(keys=True, data=True):
            edge = data["ir"]
            mask = np.ones(edge.weight.shape, bool) if edge.mask is None else np.asarray(edge.mask, bool)
            if self.signs == "both":
                exc, inh = mask.copy(), mask.copy()
            else:
                exc, inh = mask & (edge.weight > 0), mask & (edge.weight < 0)
            exc.flags.writeable = inh.flags.writeable = False
            annotate_edge(g, u, v, key, signs=SignSplit(signs=self.signs, exc=exc, inh=inh))
            total[0] += int(exc.sum())
            total[1] += int(inh.sum())
        ctx.remark(f"{total[0]} excitatory + {total[1]} inhibitory synapse slots ({self.signs})")
        return g
