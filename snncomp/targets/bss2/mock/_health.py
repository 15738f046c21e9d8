"""``MockHealth``: the health counters of a ``bss2-mock`` run, one named field per counter."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._engine import COUNTERS, BatchResult

__all__ = ["MockHealth"]


class MockHealth(eqx.Module):
    """Health counters of a run, per sample (``[*batch]``), as the chip's health report would give them.

    ``delayed``: events that waited for a busy PADI bus; ``dropped``: events lost because the bus queue
    was full; ``late``: spikes timestamped at or after the end of the run (discarded); ``unrecorded``:
    spikes of neurons whose events reach no FPGA output; ``over_budget``: spikes beyond a neuron's
    ``max_spikes`` (the chip cannot silence a neuron; the readout discards them); ``iteration_limit``:
    the run loop's guard stopped the sample early (a bug if it ever happens); ``grazing``: the smallest
    ``|u_max - threshold| / threshold`` of any membrane maximum (how close a spike decision was).
    ``saturated``/``lost``: weights clipped, or dropped for want of a synapse of their sign, when the
    parameters were re-quantized (per run).
    """

    delayed: Int[Array, "*batch"]
    dropped: Int[Array, "*batch"]
    late: Int[Array, "*batch"]
    unrecorded: Int[Array, "*batch"]
    over_budget: Int[Array, "*batch"]
    iteration_limit: Bool[Array, "*batch"]
    grazing: Float[Array, "*batch"]
    saturated: Int[Array, ""]
    lost: Int[Array, ""]

    @classmethod
    def of(cls, res: BatchResult, shaped: Callable[[Array], Array]) -> MockHealth:
        """The counters of an engine's result (its ``counters`` columns are named by ``COUNTERS``), each
        per-sample one reshaped by ``shaped`` to the batch shape."""
        counters = {name: shaped(res.counters[:, i]) for i, name in enumerate(COUNTERS)}
        return cls(
            **counters,
            iteration_limit=shaped(res.limit_hit),
            grazing=shaped(res.gap),
            saturated=res.saturated,
            lost=res.lost,
        )

    def plus_requantization(self, saturated: int, lost: int) -> MockHealth:
        """These counters with ``saturated``/``lost`` weights of a re-quantization on the host added."""
        if not (saturated or lost):
            return self
        return eqx.tree_at(lambda h: (h.saturated, h.lost), self, (self.saturated + saturated, self.lost + lost))

    def totals(self) -> dict[str, int]:
        """Counters summed over the batch (concrete runs only)."""
        out = {k: int(np.sum(np.asarray(getattr(self, k)))) for k in (*COUNTERS, "iteration_limit")}
        out["saturated"] = int(np.asarray(self.saturated))
        out["lost"] = int(np.asarray(self.lost))
        return out

    def text(self) -> str:
        """One line of totals."""
        return ", ".join(f"{k}={v}" for k, v in self.totals().items())
