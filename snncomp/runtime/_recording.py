"""What a run returns and what ``report()`` says: ``Trace``, ``Recording``, ``Report``; ``overflowed``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ..errors import BufferOverflowError
from ._spikes import Spikes, _is_tracer


class Trace(eqx.Module):
    """Membrane potential ``v`` and synaptic current ``i``, each ``[..., G, n]``, at ``times`` ``[G]``."""

    times: Float[Array, " G"]
    v: Float[Array, "*batch G n"]
    i: Float[Array, "*batch G n"]


class Recording(eqx.Module):
    """What a run produced.

    ``spikes[pop]``: the spikes of each ``lif`` population. ``overflow[pop]``:
    ``[...]`` bool, True where the population's buffer was too small (that
    sample stopped at the overflowing spike; populations downstream saw only
    the spikes before it). ``traces[pop]``: ``v``/``I`` on the requested grid.
    """

    spikes: dict[str, Spikes]
    overflow: dict[str, Bool[Array, "*batch"]]
    traces: dict[str, Trace]
    t_max: Float[Array, ""]

    def any_overflow(self) -> Array:
        """Per sample: did any population overflow?"""
        flags = list(self.overflow.values())
        if not flags:
            return jnp.zeros((), bool)
        return jnp.any(jnp.stack(flags), axis=0)

    def __repr__(self) -> str:
        pops = ", ".join(f"{k}: {v!r}" for k, v in self.spikes.items())
        tr = f", traces={sorted(self.traces)}" if self.traces else ""
        return f"Recording({{{pops}}}{tr})"


@dataclass(frozen=True)
class Report:
    """What ``Executable.report()`` returns; ``str(report)`` is the readable table."""

    target: str
    network: str
    dtype: str
    t_max: float | None
    pipeline: str
    schedule: str
    stages: list[tuple[int, str, list[str]]]
    buffers: dict[str, int]
    resources: dict[str, int]
    compile_seconds: float
    remarks: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)
    """Populations a pass removed, with the reason."""

    def removed_lines(self) -> list[str]:
        """The ``removed:`` section of the table (empty when nothing was removed)."""
        if not self.removed:
            return []
        return ["removed populations:"] + [f"  - {name}: {why}" for name, why in sorted(self.removed.items())]

    def __str__(self) -> str:
        t_max = "per call" if self.t_max is None else f"{self.t_max!r} s"
        lines = [
            f"executable '{self.network}' -> target {self.target} ({self.dtype}), t_max = {t_max}",
            f"pipeline: {self.pipeline}   (compiled in {self.compile_seconds * 1e3:.1f} ms)",
            *self.body_lines(),
            "resources: " + ", ".join(f"{k}={v}" for k, v in self.resources.items()),
            *self.status_lines(),
            *self.removed_lines(),
        ]
        if self.remarks:
            lines.append("remarks:")
            lines.extend(f"  - {r}" for r in self.remarks)
        return "\n".join(lines)

    def body_lines(self) -> list[str]:
        """What a target reports between the pipeline and the resources: here the schedule and buffers."""
        lines = [f"schedule: {self.schedule}", "stages:"]
        for index, strategy, pops in self.stages:
            lines.append(f"  {index} {strategy}")
            lines.extend(f"      {p}" for p in pops)
        bufs = ", ".join(f"{k}={v}" for k, v in sorted(self.buffers.items())) or "none"
        lines.append(f"buffers (spikes per sample): {bufs}")
        return lines

    def status_lines(self) -> list[str]:
        """State after the resources (e.g. the last run's health); none by default."""
        return []


def raise_if_overflowed(rec: Recording, buffer_text: Callable[[str], str], fix: Callable[[str], str]) -> None:
    """Raise :class:`BufferOverflowError` for the first population whose buffer overflowed in ``rec``.

    ``buffer_text(name)`` describes the buffer (``"buffer of 40 (10 neurons x 4 spikes)"``), ``fix(name)``
    how to enlarge it; traced flags (inside ``jit``) are left to the caller's flag.
    """
    for name, flag in rec.overflow.items():
        if _is_tracer(flag):
            return
        f = np.asarray(flag)
        if f.any():
            samples = np.argwhere(f.reshape(-1)).reshape(-1)
            shown = ", ".join(map(str, samples[:5])) + (", ..." if samples.size > 5 else "")
            raise BufferOverflowError(
                f"population '{name}' emitted more spikes than its {buffer_text(name)} in {samples.size} of "
                f"{f.size} sample(s) (flat sample index {shown}); {fix(name)}"
            )


def overflowed(rec: Recording, populations: Iterable[str]) -> list[str]:
    """Those of ``populations`` whose buffer overflowed in ``rec`` in some sample (concrete runs only)."""
    out = []
    for name in populations:
        flag = rec.overflow.get(name)
        if flag is not None and not _is_tracer(flag) and bool(np.any(np.asarray(flag))):
            out.append(name)
    return out


def network_resources(net: Any, params: Any) -> dict[str, int]:
    """The target-independent part of ``Report.resources``: populations, neurons, inputs, projections, weights."""
    return {
        "populations": sum(1 for n in net.nodes if n.kind != "input"),
        "neurons": sum(n.size for n in net.nodes if n.kind != "input"),
        "inputs": sum(n.size for n in net.nodes if n.kind == "input"),
        "projections": len(net.edges),
        "trainable_weights": sum(int(np.prod(w.shape)) for w in params["weight"].values()),
    }
