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
(:meth:`MockExecutable._differentiable_spikes`, :mod:`._hil`, ``docs/bss2.md``).

The class delegates: :mod:`._options` (the checked options), :mod:`._placements` (the placement cache),
:mod:`._checks` (given delays and biases), :mod:`._io` (inputs and readout in the engines' layout),
:mod:`._noise` (the trial-to-trial noise draw), :mod:`._hil`, :mod:`._health`, :mod:`._report`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ....errors import TargetError
from ....ir import Network
from ....runtime import (
    Params,
    Populations,
    Recording,
    Spikes,
    as_network,
    check_inputs,
    check_params,
    check_run_options,
    check_t_max,
    is_tracer,
    overflowed,
    raise_input_error,
    warn_if_inputs_beyond_window,
)
from ...jax_event import initial_params  # the params layout both targets share
from ..config import HardwareConfig
from ._calibration_data import GainCalibration
from ._checks import check_biases, check_delays, check_no_traces, checked_in_jit_params
from ._config import MockConfig
from ._engine import BatchResult, run_batch
from ._health import MockHealth
from ._hil import differentiable_spikes, recorded_times
from ._io import DeviceConstants, flat_inputs, flat_weights, input_segments, raise_overflow, readout_spikes
from ._layered import run_layered
from ._noise import draw, noise_scales
from ._options import MockOptions, parse_options
from ._placements import Placement, PlacementCache
from ._report import MockReport, mock_report
from ._runs import EmulatorExecutable
from ._weights import WeightLayout

__all__ = ["MockExecutable", "MockHealth", "MockReport", "compile_mock"]


class MockExecutable(EmulatorExecutable):
    """A network placed and routed on BrainScaleS-2, run on the emulator (``compile_mock``)."""

    uses_key = True  # trial-to-trial noise: apply's key draws it

    target = "bss2-mock"

    def __init__(self, network: Network, options: MockOptions, pipeline_options: dict[str, Any]):
        start = time.perf_counter()
        self._options = options
        self._dtype = options.dtype
        self._t_max: float | None = options.t_max
        self.mock: MockConfig = options.mock
        self.chip_seed: int = options.chip_seed
        self.trial_seed: int = options.trial_seed
        self.calibration: GainCalibration | None = options.calibration
        self._placements = PlacementCache(options, pipeline_options)
        self._n_traces = 0
        self._trial = 0
        self._health: MockHealth | None = None
        self._engine_used: str | None = None  # the engine of the last run (for the report)
        self._constants = DeviceConstants()  # device arrays reused by every run
        self._growing = False  # inside the re-run of a run whose readout overflowed
        first = self._placements.place(network, "initial")
        compiled = first.result.network
        self._network = compiled
        self._removed: dict[str, str] = dict(first.result.annotations.get("removed", {}))
        self._params = initial_params(compiled, self._dtype)
        self._inputs = tuple((n.name, n.size) for n in compiled.nodes if n.kind == "input")
        self._post = self._jit_post()
        self._seconds = time.perf_counter() - start

    # -- compile -------------------------------------------------------------------------------------------------
    @property
    def _current(self) -> Placement:
        """The placement runs use now (:class:`~._placements.PlacementCache`)."""
        return self._placements.current

    def _jit_post(self) -> Callable[..., tuple[Recording, MockHealth]]:
        # The readout's trace keys on the placement's index (a rebuilt placement reuses it): jit anew.
        return jax.jit(self._post_impl, static_argnames=("batch_shape", "placement"))

    def _fork(self) -> MockExecutable:
        """A copy with its own placement cache (a shallow copy, to be given its placement), no device
        constants and no run yet."""
        other = copy.copy(self)
        other._placements = copy.copy(self._placements)
        other._constants = DeviceConstants()
        other._health = None
        other._post = other._jit_post()
        return other

    def with_config(self, config: HardwareConfig) -> MockExecutable:
        """A copy that runs ``config`` instead (e.g. a hand-edited or corrupted one) for the same network.

        The emulator follows the given configuration wherever it leads -- a wrong label or row mask
        delivers spikes to the wrong synapses. Parameters are re-quantized into its projection map.
        """
        if not isinstance(config, HardwareConfig):
            raise TargetError(f"with_config takes a HardwareConfig, got {type(config).__name__}")
        other = self._fork()
        cur = self._current
        layout = WeightLayout.of(config, {k: p.shape for k, p in cur.layout.projections.items()}, cur.layout.split)
        other._placements.only(other._placements.build(cur.result, config, layout, "given configuration"))
        other._placements.events = [*self._placements.events, "given configuration"]
        other._n_traces = 0
        return other

    def _with_trims(self, trims: np.ndarray | None) -> MockExecutable:
        """A copy whose circuits' synaptic gains are multiplied by ``trims`` (``[2, hemispheres, columns]``)."""
        other = self._fork()
        other._placements.trims = None if trims is None else np.asarray(trims, np.float64)
        other._placements.rebuild()
        return other

    # -- properties ----------------------------------------------------------------------------------------------
    @property
    def params(self) -> Params:
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
        return len(self._placements.entries)

    @property
    def health(self) -> MockHealth | None:
        """Health counters of the last run with concrete values (``None`` before the first)."""
        return self._health

    def hardware_config(self, params: Params | Mapping[str, Any] | None = None) -> HardwareConfig:
        """The configuration with ``params`` re-quantized into its synapses (``None``: the current one)."""
        cur = self._current
        if params is None:
            return cur.config
        checked = check_params(params, self._params, self._dtype)
        return cur.config_with({k: np.asarray(v, np.float64) for k, v in checked["weight"].items()})

    # -- running -------------------------------------------------------------------------------------------------
    def _differentiable_spikes(
        self,
        params: dict,
        inputs: dict[str, tuple[Array, Array]],
        spikes: dict[str, tuple[Array, Array]],
        t_max: Array,
    ) -> dict[str, Array]:
        """Hardware-in-the-loop gradients of one sample on the current placement: the recorded spike times,
        differentiable by EventProp on the model (:func:`._hil.differentiable_spikes`, which runs do call)."""
        return differentiable_spikes(self._current, self._options, params, inputs, spikes, t_max)

    def _post_impl(
        self,
        res: BatchResult,
        params: Params,
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

        spikes, overflow = readout_spikes(cur, res, shaped)
        names = [name for name, _size in self._inputs]
        diff_times = recorded_times(cur, self._options, names, params, times, neurons, spikes, t_max)
        removed = self._removed
        rec = Recording(
            spikes=Populations(
                {k: Spikes(times=shaped(diff_times[k]), neurons=shaped(n)) for k, (_t, n) in spikes.items()}, removed
            ),
            overflow=Populations(overflow, removed),
            traces=Populations({}, removed),
            t_max=t_max,
        )
        return rec, MockHealth.of(res, shaped)

    def run_with_health(
        self,
        inputs: Mapping[str, Spikes],
        params: Params | Mapping[str, Any] | None = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trial: int | Any | None = None,
        key: Any = None,
        trace_times: Any = None,
        trace_populations: Any = None,
    ) -> tuple[Recording, MockHealth]:
        """:meth:`run`, also returning the run's :class:`MockHealth` (per sample)."""
        check_no_traces(trace_times, trace_populations)
        dtype = self._dtype
        check_run_options(on_overflow, dtype)
        t_max_val = check_t_max(t_max, self._t_max)
        checked = check_params(params, self._params, dtype)
        traced = any(is_tracer(v) for v in jax.tree_util.tree_leaves(checked))
        saturated = lost = 0
        if params is None:
            self._placements.first()
        synapses: Any = self._current.synapses  # params None, or traced: re-quantized inside jit
        if traced:
            checked = checked_in_jit_params(checked, self._params["bias"])
        if params is not None and not traced:
            check_delays(checked)
            check_biases(checked, self._params["bias"])
            weights = {k: np.asarray(v, np.float64) for k, v in checked["weight"].items()}
            synapses, saturated, lost = self._placements.requantize(self._network, weights, dtype)
        cur = self._current
        times, neurons, batch_shape, host_checked = check_inputs(inputs, self._inputs, self._network.name, dtype)
        if host_checked:
            warn_if_inputs_beyond_window(times, neurons, t_max_val)
        n_samples = int(np.prod(batch_shape)) if batch_shape else 1
        t_arg = t_max_val if is_tracer(t_max_val) else self._constants.t_max(t_max_val, dtype)
        engine = cur.engine_for(t_max_val, dtype, self._options.engine)
        # The layer-parallel engine's cost grows with the padded event count: pad less.
        min_events = 8 if engine == "layered" else 64
        ev_t, ev_ch, n_bad = flat_inputs(cur, self._inputs, times, neurons, n_samples, dtype, min_events)
        # (stacklevel 4: the warning points at the caller of run, through draw and run_with_health)
        key, trial, rerun, self._trial = draw(
            self.mock, self.trial_seed, trial, key, self._trial, self._constants.get, (checked, times, neurons), 4
        )
        noise = self._constants.get(("noise",), noise_scales(self.mock, cur.config.chip.fpga_clock), dtype)
        if traced:
            flat_w = flat_weights(cur, checked, dtype)
        else:
            flat_w = self._constants.get(
                ("zeros", cur.readout.weight_length), None, None, lambda: jnp.zeros(cur.readout.weight_length, dtype)
            )
        # run_layered takes the layered tables as its second argument (and the input columns' channels),
        # run_batch takes neither.
        run: Callable[..., BatchResult] = run_batch
        tables: tuple[Any, ...] = ()
        extra: dict[str, Any] = {}
        if engine == "layered":
            run, tables = run_layered, (cur.layered.tables,)
            extra["segments"] = input_segments(cur, self._inputs, times)
        res = run(
            cur.arrays, *tables, synapses, flat_w, ev_t, ev_ch, t_arg, key, trial, noise, cur.options, traced, **extra
        )
        self._engine_used = engine

        index = self._placements.entries.index(cur)
        rec, health = self._post(res, checked, times, neurons, t_arg, batch_shape=batch_shape, placement=index)
        health = health.plus_requantization(saturated, lost)
        if not host_checked:
            raise_input_error(n_bad)
        if not any(is_tracer(x) for x in jax.tree_util.tree_leaves(health)):
            self._health = health
        auto_pops = self._placements.auto_pops
        grew = [] if self._growing else overflowed(rec, auto_pops)
        if grew:
            # An automatically sized readout buffer overflowed in a concrete run: grow it, run the same
            # trial again, and say so once.
            before = self._placements.auto_per
            self._growing = True
            try:
                while overflowed(rec, auto_pops):
                    self.grow_buffers()
                    rec, health = self.run_with_health(inputs, params, t_max=t_max, on_overflow="flag", **rerun)
            finally:
                self._growing = False
            self._placements.warn_grown(grew, before, 3)  # (at the caller of run_with_health)
        if on_overflow == "raise":
            raise_overflow(self._current, rec)
        return rec, health

    @property
    def auto_buffers(self) -> dict[str, int]:
        """Populations whose readout buffer was sized automatically, with its spikes per neuron."""
        return {name: self._placements.auto_per for name in sorted(self._placements.auto_pops)}

    def grow_buffers(self, factor: int = 4) -> dict[str, int]:
        """Rebuild the readout with ``factor`` times the room in the automatically sized buffers.

        Returns the new spikes per neuron; parameters and placement are kept, programs traced before
        (e.g. a jitted training step) must be traced again.
        """
        self._placements.grow(factor)
        self._constants = DeviceConstants()
        self._post = self._jit_post()
        return self.auto_buffers

    # -- reporting -----------------------------------------------------------------------------------------------
    def report(self) -> MockReport:
        return mock_report(
            target=self.target,
            network=self._network,
            placement=self._current,
            options=self._options,
            params=self._params,
            pipeline=self._placements.pipeline_text,
            compile_seconds=self._seconds,
            removed=self._removed,
            events=self._placements.events,
            health=self._health,
            engine_used=self._engine_used,
        )

    def __repr__(self) -> str:
        return (
            f"MockExecutable(network={self._network.name!r}, dtype={np.dtype(self._dtype)}, t_max={self._t_max}, "
            f"mock={self.mock.text()!r})"
        )


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
    network = as_network(network)
    own, pass_options = parse_options(options)
    return MockExecutable(network, own, pass_options)
