"""``PartitionedExecutable``: a network larger than one chip, run partition by partition on the emulator.

:func:`compile_partitioned` is what target ``bss2-mock`` compiles with. With ``max_partitions=1`` (the
default) it is :func:`~._executable.compile_mock`; otherwise it plans the partitions
(:func:`snncomp.targets.bss2.partition.plan_partitions`, on the network lowered up to ``quantize``)
and, where more than one is needed, compiles every partition's sub-network with ``compile_mock``.

A run runs the partitions in their (topological) order: the spikes recorded from a partition's
populations are the input spikes of the stand-ins in later partitions, so they pass the FPGA's 8 ns
timestamp grid and input path like any input. Sequential mode (``chips=1``): one emulated chip, the
same ``chip_seed`` for every partition, recorded spikes replayed at their timestamps. Multi-chip mode
(``chips=k``): partition ``i`` on chip ``chip_seed + i`` (its own fixed-pattern noise and calibration),
cut spikes delivered ``inter_chip_latency`` model seconds later. Gradients need nothing special: each
partition's run is differentiable in its weights and its input spike times (hardware in the loop,
:mod:`._hil`), so ``jax.grad`` chains them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from ....errors import TargetError
from ....ir import Network
from ....runtime import (
    Executable,
    Params,
    Populations,
    Recording,
    Report,
    Spikes,
    as_network,
    check_inputs,
    check_params,
    check_run_options,
    check_t_max,
    is_tracer,
    network_resources,
    raise_if_overflowed,
)
from ...jax_event import initial_params
from ..config import PartitionedConfig
from ..partition import PartitionPlan
from ._checks import check_no_traces
from ._executable import MockExecutable, compile_mock
from ._health import MockHealth
from ._options import parse_options
from ._runs import EmulatorExecutable

__all__ = ["PartitionedExecutable", "PartitionedReport", "compile_partitioned"]


def _partition_pass(pass_options: dict[str, Any]) -> tuple[list[Any], Any]:
    """The bss2 pipeline's passes before ``partition`` (with the given options) and the ``partition`` pass."""
    from ....passes import pipeline

    passes = list(pipeline("bss2", **pass_options))
    at = next(i for i, p in enumerate(passes) if p.name == "partition")
    return passes[:at], passes[at]


def compile_partitioned(network: Any, **options: Any) -> Executable:
    """Compile for ``bss2-mock``: one ``MockExecutable`` when the network fits one chip (or partitioning is
    off, ``max_partitions=1``), else a :class:`PartitionedExecutable` over one per partition.

    Options: those of ``compile_mock`` and of the ``partition`` pass (``max_partitions``, ``objective``,
    ``chips``, ``inter_chip_latency``); in multi-chip mode ``calibration`` may be a sequence with one
    ``GainCalibration`` per chip.
    """
    network = as_network(network)
    wanted = options.get("max_partitions", 1)
    if not isinstance(wanted, int) or wanted <= 1:  # (compile_mock's pipeline reports a bad value)
        return compile_mock(network, **options)
    from ....passes import PassManager, pipeline
    from ..passes.partition import plan_and_lower

    calibration = options.get("calibration")
    per_chip = isinstance(calibration, list | tuple)
    calibrations: Sequence[Any] = calibration if isinstance(calibration, list | tuple) else ()
    own, pass_options = parse_options({k: v for k, v in options.items() if not (per_chip and k == "calibration")})
    prefix, partition = _partition_pass(pass_options)
    compile_options = {} if own.chip is None else {"chip": own.chip}
    with warnings.catch_warnings():
        # each partition's compilation warns about its own weights
        warnings.simplefilter("ignore")
        lowered = PassManager(prefix, verify_each=own.verify_each).run(network, compile_options)
    # the plan whose partitions all place and route (re-planned with slack where one did not)
    text = str(pipeline("bss2", **pass_options))
    plan, _ = plan_and_lower(lowered.graph, compile_options, partition.plan_options(), text)
    if plan.n_parts == 1 and not per_chip:
        return compile_mock(network, **options)
    if per_chip and (partition.chips == 1 or len(calibrations) != plan.n_parts):
        raise TargetError(
            f"option calibration: a sequence gives one calibration per chip in multi-chip mode; this network runs "
            f"in {plan.n_parts} partition(s) on {partition.chips} chip(s), got {len(calibrations)} calibration(s)"
        )
    return PartitionedExecutable(plan, lowered.annotations.get("removed", {}), options, partition)


@dataclass(frozen=True)
class PartitionedReport(Report):
    """``PartitionedExecutable.report()``: the partitions, each one's emulator report, and the cut table."""

    mode: str = ""
    parts: list[Report] = field(default_factory=list)
    cuts: list[str] = field(default_factory=list)
    health: str = "no run yet"

    def body_lines(self) -> list[str]:
        lines = [f"partitions: {len(self.parts)} ({self.mode})"]
        for i, part in enumerate(self.parts):
            lines.append(f"-- partition {i}: {part.network} --")
            lines.extend(f"  {x}" for line in part.body_lines() for x in line.splitlines())
            lines.append("  resources: " + ", ".join(f"{k}={v}" for k, v in part.resources.items()))
            lines.extend(f"  {x}" for x in part.status_lines())
        lines.append("cuts (recorded in -> replayed in; synapses; spikes of the last run):")
        lines.extend(f"  {c}" for c in self.cuts)
        return lines

    def status_lines(self) -> list[str]:
        return [f"health of the last run (all partitions): {self.health}"]


def _combine(healths: Sequence[MockHealth]) -> MockHealth:
    """Per-sample counters summed over partitions; the grazing distance is the smallest of any."""
    summed = ("delayed", "dropped", "late", "unrecorded", "over_budget", "saturated", "lost")
    fields = {f: sum((getattr(h, f) for h in healths[1:]), getattr(healths[0], f)) for f in summed}
    return MockHealth(
        **fields,
        iteration_limit=jnp.any(jnp.stack([h.iteration_limit for h in healths]), axis=0),
        grazing=jnp.min(jnp.stack([h.grazing for h in healths]), axis=0),
    )


class PartitionedExecutable(EmulatorExecutable):
    """A network run in several partitions on the emulator (:func:`compile_partitioned`); the interface is
    ``MockExecutable``'s: ``params`` and recordings keyed and numbered as the whole network."""

    uses_key = True
    target = "bss2-mock"

    def __init__(self, plan: PartitionPlan, removed: Mapping[str, str], options: dict[str, Any], partition: Any):
        start = time.perf_counter()
        self.plan = plan
        self.chips: int = int(partition.chips)
        self.inter_chip_latency: float = float(partition.inter_chip_latency) if self.chips > 1 else 0.0
        if self.inter_chip_latency > 0 and plan.skewed():
            from ..errors import LatencySkewWarning
            from ..passes.partition import skew_text

            # (stacklevel 5: the caller of snncomp.compile, through compile_partitioned and the plug-in)
            warnings.warn(skew_text(plan, self.inter_chip_latency), LatencySkewWarning, stacklevel=5)
        self._removed = dict(removed)
        calibration = options.get("calibration")
        self.parts: list[MockExecutable] = []
        for i, sub in enumerate(plan.parts):
            opts = dict(options)
            if self.chips > 1:
                opts["chip_seed"] = int(options.get("chip_seed", 0)) + i
                if isinstance(calibration, list | tuple):
                    opts["calibration"] = calibration[i]
            self.parts.append(compile_mock(sub, **opts))
        first = self.parts[0]
        self._dtype = first._dtype
        self._t_max = first._t_max
        self._params = initial_params(plan.network, self._dtype)
        self._inputs = tuple((n.name, n.size) for n in plan.network.nodes if n.kind == "input")
        self._health: MockHealth | None = None
        self._cut_spikes: dict[tuple[str, int], int] | None = None
        self._seconds = time.perf_counter() - start

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def params(self) -> Params:
        return self._params

    @property
    def network(self) -> Network:
        """The compiled (canonicalized) whole network; its ``edge_keys()`` key ``params``."""
        return self.plan.network

    @property
    def lowered(self) -> PartitionedConfig:
        """One ``HardwareConfig`` per partition and the cut table."""
        return self.plan.config([p.lowered for p in self.parts], self.chips, self.inter_chip_latency)

    @property
    def health(self) -> MockHealth | None:
        """Health counters of the last concrete run, summed over the partitions."""
        return self._health

    @property
    def n_traces(self) -> int:
        """Traces of the partitions' run functions, summed."""
        return sum(p.n_traces for p in self.parts)

    @property
    def cut_spikes(self) -> dict[tuple[str, int], int] | None:
        """Spikes that crossed each cut ``(stand-in, target partition)`` in the last concrete run (batch summed)."""
        return self._cut_spikes

    @property
    def auto_buffers(self) -> dict[str, int]:
        """Readout buffers sized automatically, per partition's population (slice), with spikes per neuron."""
        return {name: per for p in self.parts for name, per in p.auto_buffers.items()}

    def grow_buffers(self, factor: int = 4) -> dict[str, int]:
        """Every partition's automatically sized readout buffers times ``factor`` (see ``MockExecutable``)."""
        for p in self.parts:
            p.grow_buffers(factor)
        return self.auto_buffers

    def dequantized_network(self) -> Network:
        """What the partitions compute together, as one IR network (the partitions' dequantized networks joined)."""
        from ..effective import dequantized_network

        return self.plan.join([dequantized_network(p.compile_result) for p in self.parts])

    # -- running -------------------------------------------------------------------------------------------------
    def _part_params(self, params: Params | dict, i: int) -> dict:
        """The parameters of partition ``i``: every block of the whole network's arrays it holds."""
        out: dict[str, dict[str, Any]] = {"weight": {}, "delay": {}}
        for q in self.plan.pieces:
            if q.part == i:
                (a, b), (c, d) = q.rows, q.cols
                out["weight"][q.key] = params["weight"][q.projection][a:b, c:d]
                out["delay"][q.key] = params["delay"][q.projection]
        if "bias" in params:
            out["bias"] = {
                s.name: params["bias"][s.population][s.start : s.stop] for s in self.plan.slices if s.part == i
            }
        return out

    def _assemble(self, recs: list[Recording]) -> Recording:
        """The partitions' recordings under the whole network's population names and neuron numbering."""
        spikes, overflow = {}, {}
        for node in self.plan.network.nodes:
            own = [s for s in self.plan.slices if s.population == node.name]
            if not own or own[0].name not in recs[own[0].part].spikes:
                continue  # an input, or a population the emulator does not record (li)
            parts = [recs[s.part].spikes[s.name] for s in own]
            flags = [recs[s.part].overflow[s.name] for s in own]
            if len(own) == 1:
                spikes[node.name], overflow[node.name] = parts[0], flags[0]
                continue
            t = jnp.concatenate([p.times for p in parts], axis=-1)
            n = jnp.concatenate([jnp.where(p.neurons >= 0, p.neurons + s.start, -1) for p, s in zip(parts, own)], -1)
            order = jnp.argsort(t, axis=-1, stable=True)  # keep the recorded order of equal timestamps
            spikes[node.name] = Spikes(
                times=jnp.take_along_axis(t, order, -1), neurons=jnp.take_along_axis(n, order, -1).astype(jnp.int32)
            )
            overflow[node.name] = jnp.any(jnp.stack(flags), axis=0)
        return Recording(
            spikes=Populations(spikes, self._removed),
            overflow=Populations(overflow, self._removed),
            traces=Populations({}, self._removed),
            t_max=recs[-1].t_max,
        )

    def run_with_health(
        self,
        inputs: Mapping[str, Spikes],
        params: Any = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trial: int | Any | None = None,
        key: Any = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> tuple[Recording, MockHealth]:
        """:meth:`run`, also returning the health counters summed over the partitions (per sample).

        The partitions run in order; ``key`` is folded with the partition's index, so every partition
        draws its own trial noise, and ``trial`` picks the same draw number on every partition (each its
        own emulated run).
        """
        check_no_traces(trace_times, trace_populations)
        check_run_options(on_overflow, self._dtype)
        check_t_max(t_max, self._t_max)
        checked = None if params is None else check_params(params, self._params, self._dtype)
        check_inputs(inputs, self._inputs, self.plan.network.name, self._dtype)  # named after the whole network
        given = dict(inputs)
        recs: list[Recording] = []
        healths = []
        for i, (exe, sub) in enumerate(zip(self.parts, self.plan.parts)):
            feed = {n.name: given[n.name] for n in sub.nodes if n.kind == "input" and n.name in given}
            for c in self.plan.cuts:
                if c.target_part == i:
                    sp = recs[c.source_part].spikes[c.name]
                    feed[c.name] = Spikes(times=sp.times + self.inter_chip_latency, neurons=sp.neurons)
            rec, health = exe.run_with_health(
                feed,
                None if checked is None else self._part_params(checked, i),
                t_max=t_max,
                trial=trial,
                key=None if key is None else jax.random.fold_in(key, i),
            )
            recs.append(rec)
            healths.append(health)
        rec, health = self._assemble(recs), _combine(healths)
        if not any(is_tracer(x) for x in jax.tree_util.tree_leaves(health)):
            self._health = health
            self._cut_spikes = {
                (c.name, c.target_part): int(np.sum(np.asarray(recs[c.source_part].spikes[c.name].neurons) >= 0))
                for c in self.plan.cuts
            }
        if on_overflow == "raise":
            raise_if_overflowed(
                rec,
                lambda name: f"readout buffers ({', '.join(s.name for s in self.plan.slices if s.population == name)})",
                lambda _name: (
                    "enlarge them with compile(..., target='bss2-mock', spikes_per_neuron=N), or bound the "
                    "population with max_spikes"
                ),
            )
        return rec, health

    # -- reporting -----------------------------------------------------------------------------------------------
    def report(self) -> PartitionedReport:
        counts = self._cut_spikes
        cuts = [
            f"{c.name} ({c.population}[{c.start}-{c.stop - 1}]): partition {c.source_part} -> {c.target_part}; "
            f"{c.synapses} synapses of {', '.join(c.projections)}; "
            + ("no run yet" if counts is None else f"{counts[(c.name, c.target_part)]} spikes")
            for c in self.plan.cuts
        ]
        mode = (
            "sequential: one emulated chip runs them one after another"
            if self.chips == 1
            else f"multi-chip: {self.chips} emulated chips, inter-chip latency {self.inter_chip_latency:g} s"
        )
        parts: list[Report] = [p.report() for p in self.parts]
        return PartitionedReport(
            target=self.target,
            network=self.plan.network.name,
            dtype=np.dtype(self._dtype).name,
            t_max=self._t_max,
            pipeline=parts[0].pipeline,
            schedule="",
            stages=[],
            buffers={},
            resources={
                **network_resources(self.plan.network, self._params),
                "partitions": self.plan.n_parts,
                "cut_synapses": self.plan.cut_synapses,
            },
            compile_seconds=self._seconds,
            remarks=[f"partition {i}: {r}" for i, p in enumerate(parts) for r in p.remarks],
            removed=self._removed,
            mode=mode,
            parts=parts,
            cuts=cuts,
            health="no run yet" if self._health is None else self._health.text(),
        )

    def __repr__(self) -> str:
        return (
            f"PartitionedExecutable(network={self.plan.network.name!r}, partitions={self.plan.n_parts}, "
            f"chips={self.chips}, dtype={np.dtype(self._dtype)})"
        )
