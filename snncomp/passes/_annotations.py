"""Typed annotations that target-independent passes attach to the graph."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["Schedule", "Stage", "Strategy", "Structure"]

Strategy = Literal["layer-parallel", "event-queue"]


class _Ann(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Structure(_Ann):
    """Result of ``analyze-structure``.

    ``layers[k]`` lists the strongly connected components at depth ``k`` of the
    condensation (inputs at depth 0), each component as a sorted tuple of names.
    """

    feedforward: bool
    sccs: tuple[tuple[str, ...], ...]
    layers: tuple[tuple[tuple[str, ...], ...], ...]
    single_spike: tuple[str, ...]
    recurrent_edges: tuple[str, ...]
    synapses: int

    def text(self) -> str:
        kind = "feed-forward" if self.feedforward else "recurrent"
        layers = " | ".join(", ".join("+".join(c) for c in layer) for layer in self.layers)
        cyc = [c for c in self.sccs if len(c) > 1]
        parts = [kind, f"layers: {layers}", f"synapses={self.synapses}"]
        if cyc:
            parts.append("cycles: " + ", ".join("{" + ", ".join(c) + "}" for c in cyc))
        if self.recurrent_edges:
            parts.append("recurrent edges: " + ", ".join(self.recurrent_edges))
        return "; ".join(parts)


class Stage(_Ann):
    """One step of the simulator's execution plan.

    ``layer-parallel``: every population here depends only on spikes of earlier
    stages and spikes at most once (or is an ``li`` readout), so all its neurons
    are solved in parallel. ``event-queue``: the populations (a strongly
    connected component, or one multi-spike population) are simulated together
    by a loop over events in time order.
    """

    index: int
    strategy: Strategy
    populations: tuple[str, ...]
    stop_on: tuple[str, ...] = ()
    """Populations whose neurons' first spikes end a sample's run (``schedule{early_stop=...}``)."""


class Schedule(_Ann):
    """Result of ``schedule``: ordered stages and the spike buffer (events per sample) of each population."""

    stages: tuple[Stage, ...]
    buffers: dict[str, int]

    def stage_of(self, population: str) -> Stage:
        """The stage that computes ``population``."""
        for s in self.stages:
            if population in s.populations:
                return s
        raise KeyError(f"population '{population}' is in no stage of the schedule")

    def text(self) -> str:
        parts = [
            f"{s.index}:{s.strategy}({', '.join(s.populations)}"
            + (f"; stop on first spikes of {', '.join(s.stop_on)})" if s.stop_on else ")")
            for s in self.stages
        ]
        bufs = ", ".join(f"{k}={v}" for k, v in sorted(self.buffers.items()))
        return " -> ".join(parts) + (f"; buffers: {bufs}" if bufs else "")
