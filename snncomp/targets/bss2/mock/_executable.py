"""``MockExecutable``: a network compiled for BrainScaleS-2 and run on the emulator (target ``bss2-mock``).

``compile_mock(net, t_max=..., mock=MockConfig.realistic(), chip_seed=..., trial_seed=...)`` runs
``snncomp.pipeline("bss2")`` once (placement and routing), keeps the ``HardwareConfig`` as ``.lowered``
and runs it with :mod:`._layered` (feed-forward single-spike configurations) or :mod:`._engine`
(everything else; ``report()`` says which and why). The runtime interface is the jax target's:
``.params`` (same structure and keys), ``.run(inputs, params=None, *, t_max=None, on_overflow=...)``
returning a ``Recording`` whose ``Spikes`` have the same layout per population, ``.apply``, ``.report()``.

Weights: ``run(inputs, params)`` re-quantizes ``params`` into the existing placement and routing
(:mod:`._weights`). Where that cannot express the new weights -- a weight changed to a sign that has no
synapse (``signs=used``), or, with ``saturate=split``, grew beyond its synapses -- and the parameters are
concrete, the network is placed and routed again with the new weights (counted and shown by
``report()``); inside ``jax.grad``/``jit`` (traced parameters) it cannot be, so those weights are
clipped or dropped and counted in the run's health.

Gradients (hardware in the loop): ``run`` is differentiable. The forward pass is the emulator's; the
backward pass is EventProp on the software model of the placement, replayed at the recorded spikes
(:meth:`MockExecutable._differentiable_spikes`, ``docs/bss2.md``).
"""

from __future__ import annotations

import copy
import dataclasses
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from ....errors import BufferGrowthWarning, TargetError
from ....ir import SPIKING_KINDS, Network
from ....runtime import (
    BufferOverflowError,
    Executable,
    InputError,
    Populations,
    Recording,
    Report,
    Spikes,
    _is_tracer,
    check_compile_options,
    check_inputs,
    check_params,
    check_run_options,
    check_t_max,
    checked_in_jit,
    overflowed,
    raise_input_error,
    warn_if_inputs_beyond_window,
)
from ...jax_event import initial_params  # the params layout both targets share
from ..config import HardwareConfig
from ..report import resource_report
from ._arrays import ReadoutLayout, bucket, mock_arrays
from ._calibration_data import GainCalibration, circuits_of
from ._config import MockConfig
from ._engine import COUNTERS, BatchResult, EngineOptions, MockArrays, run_batch
from ._layered import LayeredPlan, layered_plan, run_layered
from ._neurons import neuron_arrays
from ._routing import EventTables, event_tables
from ._weights import WeightLayout, requantize_host, requantize_jax

__all__ = ["MockExecutable", "MockHealth", "MockReport", "compile_mock"]

_OPTIONS = (
    "t_max",
    "mock",
    "chip_seed",
    "trial_seed",
    "chip",
    "calibration",
    "spikes_per_neuron",
    "dtype",
    "step",
    "verify_each",
    "engine",
)
_ENGINES = ("auto", "general", "layered")
_UNBOUNDED = 1 << 30  # readout budget of a population without max_spikes
_MAX_AUTO_SPIKES = 4096  # spikes per neuron an automatically sized readout buffer may grow to


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

    def totals(self) -> dict[str, int]:
        """Counters summed over the batch (concrete runs only)."""
        out = {k: int(np.sum(np.asarray(getattr(self, k)))) for k in (*COUNTERS, "iteration_limit")}
        out["saturated"] = int(np.asarray(self.saturated))
        out["lost"] = int(np.asarray(self.lost))
        return out

    def text(self) -> str:
        """One line of totals."""
        return ", ".join(f"{k}={v}" for k, v in self.totals().items())


@dataclass(frozen=True)
class MockReport(Report):
    """``MockExecutable.report()``: the bss2 resource report, the emulator settings and the last run's health."""

    resource_table: str = ""
    mock: str = ""
    placements: list[str] = field(default_factory=list)
    health: str = "no run yet"

    def __str__(self) -> str:
        t_max = "per call" if self.t_max is None else f"{self.t_max!r} s"
        lines = [
            f"executable '{self.network}' -> target {self.target} ({self.dtype}), t_max = {t_max}",
            f"pipeline: {self.pipeline}   (compiled in {self.compile_seconds * 1e3:.1f} ms)",
            f"emulator: {self.schedule}; {self.mock}",
            "placement: " + "; ".join(self.placements),
            self.resource_table,
        ]
        bufs = ", ".join(f"{k}={v}" for k, v in sorted(self.buffers.items())) or "none"
        lines.append(f"readout buffers (spikes per sample): {bufs}")
        lines.append("resources: " + ", ".join(f"{k}={v}" for k, v in self.resources.items()))
        lines.append(f"health of the last run: {self.health}")
        lines.extend(self.removed_lines())
        if self.remarks:
            lines.append("remarks:")
            lines.extend(f"  - {r}" for r in self.remarks)
        return "\n".join(lines)


@dataclass
class _Placement:
    """One placement and routing of the network and everything derived from its configuration."""

    result: Any
    config: HardwareConfig
    tables: EventTables
    layout: WeightLayout
    arrays: MockArrays
    options: EngineOptions
    readout: ReadoutLayout
    synapses: Array
    reason: str
    layered: LayeredPlan = field(default_factory=lambda: LayeredPlan("not analysed"))
    software: Any = None  # the jax target's program of the same network, for hardware-in-the-loop gradients


class MockExecutable(Executable):
    """A network placed and routed on BrainScaleS-2, run on the emulator (``compile_mock``)."""

    uses_key = True  # trial-to-trial noise: apply's key draws it

    target = "bss2-mock"

    def __init__(self, network: Network, options: dict[str, Any], pipeline_options: dict[str, Any]):
        start = time.perf_counter()
        self._options = options
        self._pipeline_options = pipeline_options
        self._dtype = options["dtype"]
        self._t_max: float | None = options["t_max"]
        self.mock: MockConfig = options["mock"]
        self.chip_seed: int = options["chip_seed"]
        self.trial_seed: int = options["trial_seed"]
        self.calibration: GainCalibration | None = options.get("calibration")
        cal = self.calibration
        self._trims: np.ndarray | None = None if cal is None else np.stack([cal.exc, cal.inh])
        self._cache: list[_Placement] = []  # every placement made, reused when new weights fit one again
        self._events: list[str] = []
        self._n_traces = 0
        self._trial = 0
        self._health: MockHealth | None = None
        self._engine_used: str | None = None  # the engine of the last run (for the report)
        self._constants: dict[tuple, Array] = {}  # device arrays reused by every run
        self._last_t_max: tuple[float, Array] | None = None
        self._auto_pops: set[str] = set()  # populations without max_spikes or spikes_per_neuron
        self._auto_per = 8  # their readout buffers' spikes per neuron
        self._growing = False  # inside the re-run of a run whose readout overflowed
        self._current = self._place(network, "initial")
        compiled = self._current.result.network
        self._network = compiled
        self._removed: dict[str, str] = dict(self._current.result.annotations.get("removed", {}))
        self._params = initial_params(compiled, self._dtype)
        self._inputs = tuple((n.name, n.size) for n in compiled.nodes if n.kind == "input")
        self._post = jax.jit(self._post_impl, static_argnames=("batch_shape", "placement"))
        self._seconds = time.perf_counter() - start

    # -- compile -------------------------------------------------------------------------------------------------
    def _place(self, network: Network, reason: str) -> _Placement:
        from ....passes import pipeline

        opts = dict(self._pipeline_options)
        if self._t_max is not None and "runtime" not in opts:
            opts["runtime"] = self._t_max
        pipe = pipeline("bss2", **opts)
        self._pipeline_text = str(pipe)
        pass_options = {"chip": self._options["chip"]} if self._options["chip"] is not None else {}
        result = pipe.run(network, options=pass_options, verify_each=self._options["verify_each"])
        config: HardwareConfig = result.annotations["hardware_config"]
        quant = result.annotations.get("quantization")
        split = quant is not None and quant.saturate == "split"
        shapes = {k: tuple(e.weight.shape) for k, e in zip(result.network.edge_keys(), result.network.edges)}
        layout = WeightLayout.of(config, shapes, split)
        placement = self._build(result, config, layout, reason)
        self._cache.append(placement)
        self._events.append(f"placement {len(self._cache)}: {reason}")
        return placement

    def _build(self, result: Any, config: HardwareConfig, layout: WeightLayout, reason: str) -> _Placement:
        tables = event_tables(config)
        spn = self._options["spikes_per_neuron"]
        readout: list[tuple[str, int, int]] = []
        pop_of = np.zeros(tables.n_neurons, np.int64)
        index = np.zeros(tables.n_neurons, np.int64)
        budgets = np.zeros(tables.n_neurons, np.int64)
        sim_of = {int(k): n for n, k in enumerate(tables.neuron_ids)}
        offset = 0
        most = 1
        for name, pm in config.populations.items():
            if pm.kind not in SPIKING_KINDS:
                continue
            ms = config.neurons[pm.neurons[0]].max_spikes if pm.neurons else None
            if ms is None and spn is None:
                self._auto_pops.add(name)  # sized automatically; grown when a run overflows it
            per = ms if ms is not None else (int(spn) if spn is not None else self._auto_per)
            most = max(most, per)
            for k in pm.neurons:
                n = sim_of[int(k)]
                pop_of[n] = len(readout)
                index[n] = config.neurons[int(k)].index
                budgets[n] = ms if ms is not None else _UNBOUNDED
            readout.append((name, offset, pm.size * per))
            offset += pm.size * per
        neurons = neuron_arrays(config, tables.neuron_ids, self.mock, self.chip_seed, budgets, self._trims)
        arrays, opts, ro = mock_arrays(
            config,
            tables,
            neurons,
            layout,
            tuple(readout),
            pop_of,
            index,
            most,
            self.mock,
            self._dtype,
            self._options["step"],
        )
        # Without new parameters the chip runs the configuration's own synapse weights.
        synapses = jnp.asarray(layout.base.astype(self._dtype))
        if self._options["engine"] == "general":
            plan = LayeredPlan("the general engine was requested (engine='general')")
        else:
            plan = layered_plan(tables, neurons, opts, pop_of, np.array([c for _n, _o, c in readout], np.int64))
            if plan.reason is not None and self._options["engine"] == "layered":
                raise TargetError(f"engine='layered' cannot run this configuration: {plan.reason}")
        return _Placement(result, config, tables, layout, arrays, opts, ro, synapses, reason, plan)

    def with_config(self, config: HardwareConfig) -> MockExecutable:
        """A copy that runs ``config`` instead (e.g. a hand-edited or corrupted one) for the same network.

        The emulator follows the given configuration wherever it leads -- a wrong label or row mask
        delivers spikes to the wrong synapses. Parameters are re-quantized into its projection map.
        """
        if not isinstance(config, HardwareConfig):
            raise TargetError(f"with_config takes a HardwareConfig, got {type(config).__name__}")
        other = copy.copy(self)
        cur = self._current
        layout = WeightLayout.of(config, {k: p.shape for k, p in cur.layout.projections.items()}, cur.layout.split)
        other._current = other._build(cur.result, config, layout, "given configuration")
        other._cache = [other._current]
        other._constants = {}
        other._events = [*self._events, "given configuration"]
        other._health = None
        other._n_traces = 0
        other._post = jax.jit(other._post_impl, static_argnames=("batch_shape", "placement"))
        return other

    def _with_trims(self, trims: np.ndarray | None) -> MockExecutable:
        """A copy whose circuits' synaptic gains are multiplied by ``trims`` (``[2, hemispheres, columns]``)."""
        other = copy.copy(self)
        other._trims = None if trims is None else np.asarray(trims, np.float64)
        cur = self._current
        other._current = other._build(cur.result, cur.config, cur.layout, cur.reason)
        other._cache = [other._current]
        other._constants = {}
        other._health = None
        other._post = jax.jit(other._post_impl, static_argnames=("batch_shape", "placement"))
        return other

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def params(self) -> dict[str, dict[str, Array]]:
        return self._params

    @property
    def lowered(self) -> HardwareConfig:
        """The ``HardwareConfig`` the emulator runs (of the current placement)."""
        return self._current.config

    @property
    def network(self) -> Network:
        """The compiled (canonicalized) network; its ``edge_keys()`` key ``params``."""
        return self._network

    @property
    def compile_result(self) -> Any:
        """The bss2 pipeline's ``CompileResult`` of the current placement."""
        return self._current.result

    @property
    def n_traces(self) -> int:
        """How often this executable's run function was traced by ``jit`` (one per distinct input shape).

        The emulator's run loop itself is one program shared by all executables whose sizes round to
        the same powers of two (:func:`trace_count` counts its traces), so it compiles once per size class.
        """
        return self._n_traces

    @property
    def n_placements(self) -> int:
        """Placements done so far (1 unless new weights needed synapses the routing lacked)."""
        return len(self._cache)

    @property
    def health(self) -> MockHealth | None:
        """Health counters of the last run with concrete values (``None`` before the first)."""
        return self._health

    def hardware_config(self, params: Any = None) -> HardwareConfig:
        """The configuration with ``params`` re-quantized into its synapses (``None``: the current one)."""
        cur = self._current
        if params is None:
            return cur.config
        checked = check_params(params, self._params, self._dtype)
        req = requantize_host(cur.layout, {k: np.asarray(v, np.float64) for k, v in checked["weight"].items()})
        chip = cur.config.chip
        weights = req.synapses.reshape(chip.hemispheres, chip.rows_per_hemisphere, chip.columns).astype(np.uint8)
        rows = tuple(
            r.model_copy(update={"weights": weights[r.hemisphere, r.row].tobytes().hex()}) for r in cur.config.rows
        )
        # The projection map records each synapse's 6-bit weight too: keep it equal to the rows.
        projections = {
            key: pm.model_copy(update={"weight": weights[pm.hemisphere, pm.row, pm.column].astype(int).tolist()})
            for key, pm in cur.config.projections.items()
        }
        return cur.config.model_copy(update={"rows": rows, "projections": projections})

    # -- running -------------------------------------------------------------------------------------------------
    def _differentiable_spikes(
        self,
        params: dict,
        inputs: dict[str, tuple[Array, Array]],
        spikes: dict[str, tuple[Array, Array]],
        t_max: Array,
    ) -> dict[str, Array]:
        """Hardware-in-the-loop gradients: the recorded spike times, differentiable by EventProp on the model.

        Called once per sample (inside ``vmap``) with model units throughout: ``params`` are the
        parameters with every weight replaced, straight through, by the weight the chip realises
        (``w + stop_gradient(effective - w)``), ``inputs[name] = (times, neurons)`` the input spikes as
        the FPGA released them (8 ns grid, straight through to the given times), ``spikes[pop] =
        (times, neurons)`` what the mock recorded (sorted, padded with ``+inf``/``-1``). Returns
        ``{pop: times}``, equal to the recorded times; their VJP is EventProp on the software model of
        the chip (:func:`~snncomp.targets.bss2.dequantized_network` of the current placement), with the
        states at the spikes recovered by replaying the recorded spikes
        (:func:`snncomp.targets.jax_event.replay`). The configured readout delay is a calibrated
        constant, so it is taken off before the replay (the neuron fired that much earlier) and put back.
        """
        from ...jax_event import replay

        program = self._software_program()
        delay = self._readout_delay_model()
        shifted = {pop: (t - delay, n) for pop, (t, n) in spikes.items()}
        times = replay(program, params, inputs, shifted, t_max)
        return {pop: times[pop] + delay for pop in spikes}

    def _readout_delay_model(self) -> float:
        """The mock's constant readout latency in model seconds."""
        cur = self._current
        return float(self.mock.readout_delay / cur.config.chip.timestamp * np.asarray(cur.arrays.tick_model))

    def _software_program(self) -> Any:
        """The jax target's program of the network the current placement realises (built once per placement)."""
        cur = self._current
        if cur.software is None:
            import snncomp

            from ..effective import dequantized_network

            spn = self._options["spikes_per_neuron"]
            # Called while ``jit`` traces the run: build the program's arrays eagerly, not as tracers
            # that would leak into the cache.
            with jax.ensure_compile_time_eval():
                exe = snncomp.compile(
                    dequantized_network(cur.result),
                    target="jax",
                    t_max=self._t_max,
                    dtype=np.dtype(self._dtype).name,
                    **({"spikes_per_neuron": spn} if spn is not None else {}),
                )
                cur.software = exe.lowered
        return cur.software

    def _effective_params(self, params: dict) -> dict:
        """``params`` with each weight replaced, straight through, by what the chip realises (see the hook)."""
        _, effective, _, _ = requantize_jax(
            self._current.layout, {k: lax.stop_gradient(v) for k, v in params["weight"].items()}, self._dtype
        )
        # Into instantaneous synapses the chip's current weight stands for factor * the model weight: the
        # replay's weight is factor * v in its gradient (the chip's value in its value).
        factors = {k: p.factor for k, p in self._current.layout.projections.items() if np.any(p.factor != 1.0)}

        def straight(k: str, v: Array) -> Array:
            scaled = v * jnp.asarray(factors[k], v.dtype)[None, :] if k in factors else v
            return scaled + lax.stop_gradient(effective[k] - scaled)

        weight = {k: straight(k, v) if k in effective else v for k, v in params["weight"].items()}
        return {"weight": weight, "delay": params["delay"]}

    def _flat_inputs(
        self, times: dict, neurons: dict, n_samples: int, min_events: int = 64
    ) -> tuple[Array, Array, Array]:
        """Input spikes as ``[batch, events]`` times and global channels (``-1`` padding), both axes padded.

        Events are padded to a power of two (at least ``min_events``), the batch to a power of two (empty
        samples): sizes then share compiled code. Concrete inputs are assembled on the host.
        """
        cur = self._current
        ts, chs = [], []
        xp = np if all(isinstance(v, np.ndarray) for v in (*times.values(), *neurons.values())) else jnp
        bad: Any = 0 if xp is np else jnp.zeros((), jnp.int32)  # counted in the program only for traced inputs
        for name, size in self._inputs:
            t, n = times[name], neurons[name]
            real = n >= 0
            invalid = (n < -1) | (real & ((n >= size) | ~xp.isfinite(t) | (t < 0)))
            if xp is jnp:
                bad = bad + jnp.sum(invalid)
            ts.append(t)
            chs.append(xp.where(real & ~invalid, n + cur.readout.input_offsets[name], -1))
        if not ts:
            ts, chs = [np.full((n_samples, 1), np.inf)], [np.full((n_samples, 1), -1, np.int32)]
        t = xp.concatenate(ts, axis=1)
        ch = xp.concatenate(chs, axis=1)
        q, b_pad = bucket(t.shape[1], min_events), bucket(n_samples, 8)
        t = xp.pad(t, ((0, b_pad - n_samples), (0, q - t.shape[1])), constant_values=np.inf)
        ch = xp.pad(ch, ((0, b_pad - n_samples), (0, q - ch.shape[1])), constant_values=-1)
        if xp is np:
            t, ch = jax.device_put((t.astype(self._dtype), ch.astype(np.int32)))  # one transfer
            return t, ch, bad
        return jnp.asarray(t, self._dtype), jnp.asarray(ch, jnp.int32), bad

    def _flat_weights(self, params: dict) -> Array:
        ro = self._current.readout
        parts = [jnp.ravel(params["weight"][k]) for k in ro.weight_offsets]
        flat = jnp.concatenate(parts) if parts else jnp.zeros(0, self._dtype)
        return jnp.pad(flat.astype(self._dtype), (0, ro.weight_length - flat.shape[0]))

    def _post_impl(
        self,
        res: BatchResult,
        params: dict,
        times: dict,
        neurons: dict,
        t_max: Array,
        batch_shape: tuple[int, ...],
        placement: int,
    ) -> tuple[Recording, MockHealth]:
        """Readout buffers -> ``Recording`` (model units) through the gradient hook, and the health counters."""
        self._n_traces += 1
        cur = self._current
        n_samples = int(np.prod(batch_shape)) if batch_shape else 1
        res = jax.tree_util.tree_map(lambda x: x[:n_samples] if x.ndim else x, res)  # drop the batch padding

        def shaped(x: Array) -> Array:
            return jnp.reshape(x, batch_shape + x.shape[1:])

        spikes: dict[str, tuple[Array, Array]] = {}
        overflow: dict[str, Array] = {}
        for p, (name, off, cap) in enumerate(cur.readout.populations):
            t = res.rec_time[:, off : off + cap] * cur.arrays.tick_model
            spikes[name] = (t, res.rec_index[:, off : off + cap])
            overflow[name] = shaped(res.overflow[:, p])
        if self._inputs:
            st_params = self._effective_params(params)
            tick = cur.arrays.tick_model

            def hook(ts: dict, ns: dict, sp: dict) -> dict:
                released = {}
                for name, _size in self._inputs:
                    t = ts[name]
                    q = jnp.floor(t / tick + 0.5) * tick
                    released[name] = (t + lax.stop_gradient(jnp.where(jnp.isfinite(t), q - t, 0.0)), ns[name])
                return self._differentiable_spikes(st_params, released, sp, t_max)

            diff_times = jax.vmap(hook)(times, neurons, spikes)
        else:
            diff_times = {k: lax.stop_gradient(v[0]) for k, v in spikes.items()}
        removed = self._removed
        rec = Recording(
            spikes=Populations(
                {k: Spikes(times=shaped(diff_times[k]), neurons=shaped(n)) for k, (_t, n) in spikes.items()}, removed
            ),
            overflow=Populations(overflow, removed),
            traces=Populations({}, removed),
            t_max=t_max,
        )
        c = res.counters
        health = MockHealth(
            delayed=shaped(c[:, 0]),
            dropped=shaped(c[:, 1]),
            late=shaped(c[:, 2]),
            unrecorded=shaped(c[:, 3]),
            over_budget=shaped(c[:, 4]),
            iteration_limit=shaped(res.limit_hit),
            grazing=shaped(res.gap),
            saturated=res.saturated,
            lost=res.lost,
        )
        return rec, health

    def _constant(self, name: tuple, value: Any, dtype: Any, make: Any = None) -> Array:
        """A device constant kept across runs (``make()`` or ``jnp.asarray(value, dtype)``): no transfer per call."""
        key = (*name, None if dtype is None else np.dtype(dtype).name)
        if key not in self._constants:
            with jax.ensure_compile_time_eval():  # a concrete array even while a caller's jit traces this run
                self._constants[key] = make() if make is not None else jnp.asarray(value, dtype)
        return self._constants[key]

    def _t_max_array(self, t_max: float) -> Array:
        """``t_max`` as a device scalar (the last value is kept)."""
        if self._last_t_max is None or self._last_t_max[0] != t_max:
            with jax.ensure_compile_time_eval():
                self._last_t_max = (t_max, jnp.asarray(t_max, self._dtype))
        return self._last_t_max[1]

    def _engine_for(self, cur: _Placement, t_max: Any) -> str:
        """``"layered"`` where the layer-parallel engine computes this run exactly, else ``"general"``.

        The configuration decides (:func:`~._layered.layered_plan`) -- except the window: every neuron's
        refractory period must outlast the run, which a traced ``t_max`` cannot show.
        """
        plan = cur.layered
        if plan.reason is not None or _is_tracer(t_max):
            if plan.reason is None and self._options["engine"] == "layered":
                raise TargetError("engine='layered' needs a concrete t_max (its refractory check is made on the host)")
            return "general"
        t_end = float(np.asarray(t_max, self._dtype) / np.asarray(cur.arrays.tick_model))  # as the engines compute it
        if t_end > plan.max_ticks:
            if self._options["engine"] == "layered":
                raise TargetError(
                    f"engine='layered' needs single-spike neurons: a refractory period of {plan.max_ticks:g} ticks "
                    f"is shorter than the run of {t_end:g} ticks"
                )
            return "general"
        return "layered"

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
        """:meth:`run`, also returning the run's :class:`MockHealth` (per sample)."""
        if trace_times is not None or trace_populations is not None:
            raise InputError(
                "the bss2-mock target records spikes only: membrane traces would need the CADC/MADC, which the "
                "emulator does not model; trace on target 'jax' (snncomp.compile(net, target='jax'))"
            )
        dtype = self._dtype
        check_run_options(on_overflow, dtype)
        t_max_val = check_t_max(t_max, self._t_max)
        checked = check_params(params, self._params, dtype)
        traced = any(_is_tracer(v) for v in jax.tree_util.tree_leaves(checked))
        saturated = lost = 0
        if params is None and self._current is not self._cache[0]:
            # The first placement was made for the compiled parameters, so it always holds them.
            self._current = self._cache[0]
            self._events.append("back to placement 1: the compiled parameters")
        synapses: Any = self._current.synapses  # params None, or traced: re-quantized inside jit
        if traced:
            checked = {
                "weight": checked["weight"],
                "delay": self._delays_checked_in_jit(checked["delay"]),
                "bias": self._biases_checked_in_jit(checked["bias"]),
            }
        if params is not None and not traced:
            self._check_delays(checked)
            self._check_biases(checked)
            weights = {k: np.asarray(v, np.float64) for k, v in checked["weight"].items()}
            req = requantize_host(self._current.layout, weights)
            if req.needs_placement:
                self._replace(weights, "; ".join(req.needs_placement))
                req = requantize_host(self._current.layout, weights)
            synapses = jnp.asarray(req.synapses.astype(dtype))
            saturated, lost = req.saturated, req.lost
        cur = self._current
        times, neurons, batch_shape, host_checked = check_inputs(inputs, self._inputs, self._network.name, dtype)
        if host_checked:
            warn_if_inputs_beyond_window(times, neurons, t_max_val)
        n_samples = int(np.prod(batch_shape)) if batch_shape else 1
        t_arg = t_max_val if _is_tracer(t_max_val) else self._t_max_array(t_max_val)
        engine = self._engine_for(cur, t_max_val)
        # The layer-parallel engine's cost grows with the padded event count: pad less.
        ev_t, ev_ch, n_bad = self._flat_inputs(times, neurons, n_samples, 8 if engine == "layered" else 64)
        if key is not None and trial is not None:
            raise InputError("bss2-mock run: pass trial= or key= to choose the trial-to-trial noise, not both")
        if key is None and trial is None:
            if self.mock.has_trial_noise and _staged(checked, times, neurons):
                warnings.warn(
                    "bss2-mock: run inside jit without trial= or key=: the trial-to-trial noise is drawn when the "
                    "function is traced, so every call of the compiled function repeats the same draw; pass "
                    "trial=<int array> or key=<PRNG key> as an argument of the jitted function for fresh noise",
                    stacklevel=3,
                )
            trial = self._trial
            self._trial += 1
        rerun = {"key": key} if key is not None else {"trial": trial}  # the same draw, should the buffers grow
        # The per-sample keys are split inside the run (sample_keys): no PRNG work on the host.
        if key is None:
            key = self._constant(("root", self.trial_seed), None, None, lambda: jax.random.PRNGKey(self.trial_seed))
            trial = np.int32(trial) if isinstance(trial, (int, np.integer)) else trial
        else:
            trial = None
        chip = cur.config.chip
        noise = self._constant(
            ("noise",),
            [self.mock.jitter * chip.fpga_clock, self.mock.readout_delay * chip.fpga_clock, self.mock.threshold_noise],
            dtype,
        )
        if traced:
            flat_w = self._flat_weights(checked)
        else:
            flat_w = self._constant(
                ("zeros", cur.readout.weight_length), None, None, lambda: jnp.zeros(cur.readout.weight_length, dtype)
            )
        # run_layered takes the layered tables as its second argument, run_batch takes none.
        run: Callable[..., BatchResult] = run_layered if engine == "layered" else run_batch
        tables = (cur.layered.tables,) if engine == "layered" else ()
        res = run(cur.arrays, *tables, synapses, flat_w, ev_t, ev_ch, t_arg, key, trial, noise, cur.options, traced)
        self._engine_used = engine

        rec, health = self._post(
            res, checked, times, neurons, t_arg, batch_shape=batch_shape, placement=self._cache.index(cur)
        )
        if saturated or lost:
            health = eqx.tree_at(
                lambda h: (h.saturated, h.lost), health, (health.saturated + saturated, health.lost + lost)
            )
        if not host_checked:
            raise_input_error(n_bad)
        if not any(_is_tracer(x) for x in jax.tree_util.tree_leaves(health)):
            self._health = health
        grew = [] if self._growing else overflowed(rec, self._auto_pops)
        if grew:
            # An automatically sized readout buffer overflowed in a concrete run: grow it, run the same
            # trial again, and say so once.
            before = self._auto_per
            self._growing = True
            try:
                while overflowed(rec, self._auto_pops):
                    self.grow_buffers()
                    rec, health = self.run_with_health(inputs, params, t_max=t_max, on_overflow="flag", **rerun)
            finally:
                self._growing = False
            warnings.warn(
                f"population(s) {', '.join(grew)}: the automatically sized readout buffer of {before} spikes per "
                f"neuron overflowed; grown to {self._auto_per} and run again (compile with spikes_per_neuron="
                f"{self._auto_per}, or set max_spikes, to size it yourself)",
                BufferGrowthWarning,
                stacklevel=2,
            )
        if on_overflow == "raise":
            self._raise_overflow(rec)
        return rec, health

    @property
    def auto_buffers(self) -> dict[str, int]:
        """Populations whose readout buffer was sized automatically, with its spikes per neuron."""
        return {name: self._auto_per for name in sorted(self._auto_pops)}

    def grow_buffers(self, factor: int = 4) -> dict[str, int]:
        """Rebuild the readout with ``factor`` times the room in the automatically sized buffers.

        Returns the new spikes per neuron; parameters and placement are kept, programs traced before
        (e.g. a jitted training step) must be traced again.
        """
        if not self._auto_pops:
            raise TargetError("grow_buffers: this executable has no automatically sized buffer")
        if self._auto_per * factor > _MAX_AUTO_SPIKES:
            raise BufferOverflowError(
                f"population(s) {', '.join(sorted(self._auto_pops))} overflowed automatically sized readout "
                f"buffers of {self._auto_per} spikes per neuron, the most snncomp grows them to; bound them with "
                "max_spikes, or pass spikes_per_neuron=N explicitly"
            )
        self._auto_per *= factor
        cur = self._current
        self._current = self._build(cur.result, cur.config, cur.layout, cur.reason)
        self._cache = [self._current]
        self._constants = {}
        # The readout's trace keys on the placement's index, which the rebuilt placement reuses.
        self._post = jax.jit(self._post_impl, static_argnames=("batch_shape", "placement"))
        return self.auto_buffers

    def run(
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
    ) -> Recording:
        """Run ``inputs`` on the emulated chip over ``[0, t_max)``; ``vmap``-ed, one ``jit`` trace per input shape.

        ``params`` (default :attr:`params`) are re-quantized into the existing routing. ``t_max``
        overrides the compile-time window (no retracing). ``on_overflow="raise"`` raises
        :class:`~snncomp.runtime.BufferOverflowError` when a readout buffer was too small.

        Trial-to-trial noise: ``trial`` (an integer, traced or not) picks one draw of the sequence
        fixed by ``trial_seed``; ``key`` (a JAX PRNG key) picks a draw directly. With neither, a
        counter advances on every call, so repeated runs differ as on the chip -- but inside
        ``jit``/``grad`` the counter is read once, when the function is traced, and every call of
        the compiled function would repeat that draw: pass ``trial`` or ``key`` as an argument of
        the jitted function there (a warning says so otherwise). The run's health counters are kept
        in :attr:`health`.
        """
        return self.run_with_health(
            inputs,
            params,
            t_max=t_max,
            on_overflow=on_overflow,
            trial=trial,
            key=key,
            trace_times=trace_times,
            trace_populations=trace_populations,
        )[0]

    def apply(
        self,
        params: Any,
        inputs: Mapping[str, Spikes],
        key: Any = None,
        *,
        t_max: float | None = None,
        trial: int | Any | None = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> Recording:
        """``run`` with the parameters first and overflow only flagged, for ``jax.grad``/``train.fit``.

        ``key`` draws the trial-to-trial noise (``train.fit`` passes a fresh key every step, so each
        training step in the loop sees new noise, as on the chip).
        """
        return self.run(
            inputs,
            params,
            t_max=t_max,
            on_overflow="flag",
            trial=trial,
            key=key,
            trace_times=trace_times,
            trace_populations=trace_populations,
        )

    @staticmethod
    def _delays_checked_in_jit(delays: dict) -> dict:
        """Traced delays, raising at run time unless 0 (the message of :meth:`_check_delays`)."""
        return {
            key: checked_in_jit(
                d,
                lambda d: jnp.stack([jnp.any(d != 0)]),
                [
                    f"params['delay']['{key}'] is not 0: BrainScaleS-2 has no programmable synaptic delay; keep "
                    "delays at 0 on the bss2-mock target (checked inside jit: the parameters were traced)"
                ],
            )
            for key, d in delays.items()
        }

    def _biases_checked_in_jit(self, biases: dict) -> dict:
        """Traced biases, raising at run time unless they are the compiled ones (see :meth:`_check_biases`)."""
        return {
            key: checked_in_jit(
                b,
                # (mypy can't infer a lambda with a default argument)
                lambda b, ref=self._params["bias"][key]: jnp.stack([jnp.any(b != ref.astype(b.dtype))]),  # type: ignore[misc]
                [
                    f"params['bias']['{key}'] differs from the compiled bias: on bss2-mock a bias is the neurons' "
                    "leak potential, set at compile time; compile the network with the new bias instead (checked "
                    "inside jit: the parameters were traced)"
                ],
            )
            for key, b in biases.items()
        }

    def _check_biases(self, params: dict) -> None:
        for key, b in params.get("bias", {}).items():
            ref = np.asarray(self._params["bias"][key])
            if not np.array_equal(np.asarray(b, ref.dtype), ref):
                raise InputError(
                    f"params['bias']['{key}'] differs from the compiled bias {ref.tolist()}: on bss2-mock a bias "
                    "is the neurons' leak potential, set at compile time; compile the network with the new bias "
                    "(or leave the 'bias' group out of params)"
                )

    def _check_delays(self, params: dict) -> None:
        for key, d in params["delay"].items():
            if float(np.asarray(d)) != 0.0:
                raise InputError(
                    f"params['delay']['{key}'] = {float(np.asarray(d))!r}: BrainScaleS-2 has no programmable "
                    "synaptic delay; keep delays at 0 on the bss2-mock target"
                )

    def _replace(self, weights: dict[str, np.ndarray], reason: str) -> None:
        """Switch to a placement that can hold ``weights``: a cached one if any fits, else a new one."""
        for k, cached in enumerate(self._cache):
            if cached is not self._current and not requantize_host(cached.layout, weights).needs_placement:
                self._current = cached
                self._events.append(f"back to placement {k + 1}: {reason}")
                return
        net = self._network
        edges = tuple(
            e.model_copy(update={"weight": np.asarray(weights[k], np.float64).astype(e.weight.dtype)})
            for k, e in zip(net.edge_keys(), net.edges)
        )
        self._current = self._place(net.replace(edges=edges), f"redone: {reason}")

    def _raise_overflow(self, rec: Recording) -> None:
        caps = {name: cap for name, _o, cap in self._current.readout.populations}
        for name, flag in rec.overflow.items():
            if _is_tracer(flag):
                return
            f = np.asarray(flag)
            if f.any():
                samples = np.argwhere(f.reshape(-1)).reshape(-1)
                shown = ", ".join(map(str, samples[:5])) + (", ..." if samples.size > 5 else "")
                size = self._current.config.populations[name].size
                raise BufferOverflowError(
                    f"population '{name}' emitted more spikes than its readout buffer of {caps[name]} "
                    f"({size} neurons x {caps[name] // max(1, size)} spikes) in {samples.size} of {f.size} "
                    f"sample(s) (flat sample index {shown}); enlarge it with "
                    "compile(..., target='bss2-mock', spikes_per_neuron=N), or bound the population with max_spikes"
                )

    # -- reporting -----------------------------------------------------------------------------------------------
    def report(self) -> MockReport:
        cur = self._current
        net = self._network
        res = resource_report(cur.config)
        resources = {
            "populations": sum(1 for n in net.nodes if n.kind != "input"),
            "neurons": sum(n.size for n in net.nodes if n.kind != "input"),
            "inputs": sum(n.size for n in net.nodes if n.kind == "input"),
            "projections": len(net.edges),
            "synapses": sum(p.synapses for p in cur.config.projections.values()),
            "event_lanes": cur.tables.n_lanes,
            "synapse_contacts": len(cur.tables.contact_lane),
            "trainable_weights": sum(int(np.prod(w.shape)) for w in self._params["weight"].values()),
        }
        remarks = [str(r) for r in cur.result.remarks]
        if self.calibration is not None:
            cols = cur.config.chip.columns
            missed = [c for c in circuits_of(cur.config) if not self.calibration.measured[c // cols, c % cols]]
            if missed:
                remarks.append(f"{len(missed)} circuit(s) in use were not covered by the gain calibration (trim 1)")
            cal = self.calibration
            for name, pm in cur.config.populations.items():
                if pm.kind not in SPIKING_KINDS or not pm.neurons:
                    continue
                n = cur.config.neurons[pm.neurons[0]]
                taus = (n.tau_mem * cur.config.speedup, n.tau_syn_exc * cur.config.speedup)
                if not np.allclose(taus, (cal.tau_mem, cal.tau_syn), rtol=1e-6):
                    # The measured g/theta includes the response's peak height, which depends on the taus.
                    remarks.append(
                        f"population '{name}' has tau_mem={taus[0]:g}, tau_syn={taus[1]:g} s; the gain calibration "
                        f"was measured at {cal.tau_mem:g}, {cal.tau_syn:g} s (calibrate_gain(tau_mem=, tau_syn=))"
                    )
        if cur.tables.ignored_nodes:
            remarks.append(f"{cur.tables.ignored_nodes} crossbar node(s) the chip does not have were ignored")
        return MockReport(
            target=self.target,
            network=net.name,
            dtype=str(np.dtype(self._dtype)),
            t_max=self._t_max,
            pipeline=self._pipeline_text,
            schedule=self._schedule_text(cur),
            stages=[],
            buffers={name: cap for name, _o, cap in cur.readout.populations},
            resources=resources,
            compile_seconds=self._seconds,
            remarks=remarks,
            removed=dict(self._removed),
            resource_table=res.table(),
            mock=f"mock {self.mock.text()}; chip_seed={self.chip_seed}, trial_seed={self.trial_seed}"
            + ("" if self.calibration is None else f"; {self.calibration.text()}"),
            placements=list(self._events),
            health=self._health.text() if self._health is not None else "no run yet",
        )

    def _schedule_text(self, cur: _Placement) -> str:
        """Which engine runs (ran) this placement, and why."""
        clock = f"{cur.config.chip.timestamp * 1e9:g} ns"
        general = f"general engine, event-driven on the {clock} FPGA clock, exact between events"
        plan = cur.layered
        if plan.reason is not None:
            return f"{general} (layer-parallel engine not applicable: {plan.reason})"
        layered = f"layer-parallel engine, closed form per layer ({plan.text()})"
        if self._engine_used == "general":
            return (
                f"{general} for the last run (layer-parallel engine not applicable to it: t_max longer than "
                f"the shortest refractory period of {plan.max_ticks:g} ticks, or traced); otherwise {layered}"
            )
        return layered

    def __repr__(self) -> str:
        return (
            f"MockExecutable(network={self._network.name!r}, dtype={np.dtype(self._dtype)}, t_max={self._t_max}, "
            f"mock={self.mock.text()!r})"
        )


def _staged(*trees: Any) -> bool:
    """Whether any leaf is staged out by ``jit`` (possibly under ``grad``/``vmap``), its value not known yet."""
    for leaf in jax.tree_util.tree_leaves(trees):
        for _ in range(16):  # unwrap grad/vmap tracers down to the value they carry
            if not isinstance(leaf, jax.core.Tracer):
                break
            if "Jaxpr" in type(leaf).__name__:
                return True
            leaf = getattr(leaf, "primal", getattr(leaf, "val", None))
    return False


def compile_mock(network: Any, **options: Any) -> MockExecutable:
    """Compile ``network`` for BrainScaleS-2 and return an executable that runs on the emulator.

    Options: ``t_max`` (window in model seconds, overridable per run), ``mock`` (a :class:`MockConfig`,
    default :meth:`MockConfig.ideal`), ``chip_seed`` (fixed-pattern noise, default 0), ``trial_seed``
    (trial-to-trial noise, default 0), ``chip`` (a ``ChipSpec``), ``calibration`` (a
    :class:`GainCalibration` of this chip from :func:`calibrate_gain`: per-circuit synaptic-gain trims),
    ``spikes_per_neuron`` (readout bound of populations without ``max_spikes``), ``dtype`` (float32 default,
    float64 under ``jax_enable_x64``), ``step`` (the emulator's longest integration step while a neuron may
    cross threshold, in 8 ns FPGA ticks, default 16; numerics only, general engine), ``engine`` (``"auto"``,
    default: the layer-parallel engine where the configuration is feed-forward and single-spike, else the
    general one; ``"general"`` always the general engine; ``"layered"`` the layer-parallel one or an
    error), ``verify_each`` (re-verify after every pass, default True). Any other option sets a bss2 pass
    option by name (``signs="used"``, ``saturate="split"``, ``scale=40``, ``strategy="first-fit"``,
    ``speedup=…``).
    """
    from ....dsl import Network as Builder
    from ....passes import pipeline

    if isinstance(network, Builder):
        network = network.build()
    if not isinstance(network, Network):
        raise TargetError(
            f"compile() takes an snncomp.ir.Network (or an snncomp.Network builder), got {type(network).__name__}"
        )
    pass_options = {k: v for k, v in options.items() if k not in _OPTIONS}
    valid = sorted({f.name for p in pipeline("bss2") for f in dataclasses.fields(p)})
    unknown = sorted(k for k in pass_options if k not in valid)
    if unknown:
        raise TargetError(
            f"target 'bss2-mock' has no option {', '.join(map(repr, unknown))}; valid options: "
            f"{', '.join(_OPTIONS)}, and the bss2 pass options {', '.join(valid)}"
        )
    t_max, dtype = check_compile_options(options)
    mock = options.get("mock") or MockConfig.ideal()
    if not isinstance(mock, MockConfig):
        raise TargetError(f"option mock must be a MockConfig (MockConfig.ideal() or .realistic()), got {mock!r}")
    engine = options.get("engine", "auto")
    if engine not in _ENGINES:
        raise TargetError(f"engine must be one of {', '.join(map(repr, _ENGINES))}, got {engine!r}")
    step = int(options.get("step", 16))
    if not 1 <= step <= 1024:
        raise TargetError(f"step must be 1..1024 FPGA ticks (the emulator's longest integration step), got {step!r}")
    calibration = options.get("calibration")
    if calibration is not None:
        from ..chip import ChipSpec

        if not isinstance(calibration, GainCalibration):
            raise TargetError(
                f"option calibration must be a GainCalibration (from calibrate_gain), got {type(calibration).__name__}"
            )
        chip = options.get("chip") or ChipSpec()
        why = calibration.matches(mock, int(options.get("chip_seed", 0)), chip)
        if why is not None:
            raise TargetError(f"option calibration does not belong to this chip: {why}")
    spn = options.get("spikes_per_neuron")
    if spn is not None and int(spn) < 1:
        raise TargetError(f"spikes_per_neuron must be >= 1, got {spn!r}")
    own = {
        "t_max": t_max,
        "mock": mock,
        "chip_seed": int(options.get("chip_seed", 0)),
        "trial_seed": int(options.get("trial_seed", 0)),
        "chip": options.get("chip"),
        "calibration": calibration,
        "spikes_per_neuron": None if spn is None else int(spn),
        "dtype": dtype,
        "verify_each": bool(options.get("verify_each", True)),
        "step": step,
        "engine": engine,
    }
    return MockExecutable(network, own, pass_options)
