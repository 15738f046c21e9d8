"""``JaxExecutable``: a network compiled for the event-driven JAX simulator, and ``compile_jax``.

The executable implements the runtime's contract (:class:`snncomp.runtime.Executable`): ``params``,
``run``/``apply`` (``vmap`` over the batch, one ``jit`` trace per input shape), ``report``; it uses
the runtime's shared input, parameter and overflow checks.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ...errors import BufferGrowthWarning, BufferOverflowError, InputError, TargetError
from ...ir import Network
from ...runtime import (
    Executable,
    Params,
    Populations,
    Recording,
    Report,
    Spikes,
    Trace,
    check_compile_options,
    check_inputs,
    check_params,
    check_run_options,
    check_t_max,
    checked_in_jit,
    is_tracer,
    network_resources,
    overflowed,
    population_problem,
    raise_if_overflowed,
    raise_input_error,
    warn_if_inputs_beyond_window,
)
from ._batch import BATCH_AXIS

__all__ = ["JaxExecutable", "compile_jax"]


class JaxExecutable(Executable):
    """A network compiled for the event-driven JAX simulator (``snncomp.compile(net, target="jax")``)."""

    target = "jax"

    def __init__(self, program: Any, params: Params, result: Any, options: dict[str, Any], seconds: float):
        self._program = program
        self._params = params
        self._result = result
        self._options = options
        self._seconds = seconds
        self._n_traces = 0
        # Host-side copies of the program's static facts: run() reads them on every call, and
        # attribute access on equinox modules is comparatively slow.
        self._dtype = np.dtype(program.dtype)
        self._t_max = program.t_max
        self._inputs = tuple(program.inputs)
        self._name = program.name
        self._plans = program.plans()
        self._removed: dict[str, str] = dict(result.annotations.get("removed", {}))
        self._jitted = jax.jit(self._batched, static_argnames=("trace_populations", "inputs_sorted", "batch_shape"))
        self._source: Network | None = None  # the network as given to compile: rebuilt when buffers grow
        self._auto = self._auto_sized(result)
        self._bias_limits = self._bias_limits_of(self._plans)

    @staticmethod
    def _bias_limits_of(plans: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Per current-based spiking population, the bias each neuron must stay below (``v_threshold - v_leak``).

        Above it the neuron would fire tonically, which the exact solver for ``tau_syn > 0`` does not model.
        """
        out = {}
        for name, p in plans.items():
            nrn = p.nrn
            if p.kind == "lif" and not nrn.has_jump:
                out[name] = np.broadcast_to(np.asarray(nrn.theta + nrn.bias, np.float64), (p.size,))
        return out

    def _checked_biases(self, params: Params) -> Params:
        """``params`` with its biases checked against :meth:`_bias_limits_of` (on the host, or inside jit)."""
        biases = dict(params.get("bias", {}))
        why = "v_leak + bias must stay below v_threshold with a synaptic current (tau_syn > 0): the neuron would fire "
        for name, limit in self._bias_limits.items():
            b = biases[name]
            if is_tracer(b):
                lim = jnp.asarray(limit, b.dtype)
                biases[name] = checked_in_jit(
                    b,
                    lambda b, lim=lim: jnp.stack([jnp.any(b >= lim)]),  # type: ignore[misc]  # lambda with a default
                    [f"params['bias']['{name}']: {why}without input (checked inside jit: the parameters were traced)"],
                )
            elif np.any(np.asarray(b) >= limit):
                k = int(np.argwhere(np.asarray(b) >= limit)[0][0])
                raise InputError(
                    f"params['bias']['{name}']: {why}without input; neuron {k} has bias {float(np.asarray(b)[k])!r} "
                    f">= {float(limit[k])!r}"
                )
        return params.replace(bias=biases) if biases else params

    @staticmethod
    def _auto_sized(result: Any) -> dict[str, int]:
        """Spikes per neuron of every automatically sized buffer (``schedule`` marks them ``buffer_auto``)."""
        out = {}
        for name, data in result.graph.nodes(data=True):
            ann = data.get("ann", {})
            if ann.get("buffer_auto"):
                out[name] = int(ann["buffer"]) // data["ir"].size
        return out

    @property
    def auto_buffers(self) -> dict[str, int]:
        """Populations whose spike buffer was sized automatically, with its spikes per neuron."""
        return dict(self._auto)

    def grow_buffers(self, populations: Sequence[str] | None = None, factor: int = 4) -> dict[str, int]:
        """Rebuild the program with ``factor`` times the room in the automatically sized buffers.

        Returns the new spikes per neuron (every auto-sized buffer shares one bound). Parameters are
        kept; programs traced before (e.g. a jitted training step) must be traced again.
        """
        if not self._auto:
            raise TargetError("grow_buffers: this executable has no automatically sized buffer")
        per = max(self._auto.values()) * factor
        if per > _MAX_AUTO_SPIKES:
            raise BufferOverflowError(
                f"population(s) {', '.join(populations or self._auto)} overflowed automatically sized buffers "
                f"of {max(self._auto.values())} spikes per neuron, the most snncomp grows them to; bound them "
                "with max_spikes, or pass spikes_per_neuron=N explicitly"
            )
        options = {k: v for k, v in self._options.items() if k in _JAX_OPTIONS}
        grown = compile_jax(self._source or self._result.network, **options, _auto_spikes_per_neuron=per)
        self._program, self._result, self._plans = grown._program, grown._result, grown._plans
        self._auto = grown._auto
        self._jitted = jax.jit(self._batched, static_argnames=("trace_populations", "inputs_sorted", "batch_shape"))
        return dict(self._auto)

    # -- properties -----------------------------------------------------------
    @property
    def params(self) -> Params:
        return self._params

    @property
    def lowered(self) -> Any:
        return self._program

    @property
    def network(self) -> Network:
        """The compiled (canonicalized) network; its ``edge_keys()`` key ``params``."""
        return self._result.network

    @property
    def n_traces(self) -> int:
        """How often the run function was traced by ``jit`` (one per distinct input shape)."""
        return self._n_traces

    # -- running --------------------------------------------------------------
    def _batched(
        self,
        params: Params,
        times: dict,
        neurons: dict,
        t_max: Array,
        grid: Any,
        trace_populations: tuple,
        inputs_sorted: bool,
        batch_shape: tuple[int, ...],
    ) -> tuple[Recording, Array]:
        self._n_traces += 1

        def one(ts: dict, ns: dict) -> Any:
            inputs = {k: (ts[k], ns[k]) for k in ts}
            return self._program(params, inputs, t_max, grid, trace_populations, inputs_sorted)

        out = jax.vmap(one, axis_name=BATCH_AXIS)(times, neurons)

        def shaped(x: Array) -> Array:
            return jnp.reshape(x, batch_shape + x.shape[1:])

        removed = self._removed
        spikes = Populations(
            {k: Spikes(times=shaped(b.times), neurons=shaped(b.neurons)) for k, b in out.spikes.items()}, removed
        )
        overflow = Populations({k: shaped(b.overflow) for k, b in out.spikes.items()}, removed)
        traces = Populations({}, removed)
        if out.traces is not None:
            traces.update({k: Trace(times=grid, v=shaped(v), i=shaped(i)) for k, (v, i) in out.traces.items()})
        rec = Recording(spikes=spikes, overflow=overflow, traces=traces, t_max=t_max)
        return rec, jnp.sum(out.input_error)

    def run(
        self,
        inputs: Mapping[str, Spikes],
        params: Params | Mapping[str, Any] | None = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trace_times: Any = None,
        trace_populations: Sequence[str] | None = None,
    ) -> Recording:
        """Simulate ``inputs`` over ``[0, t_max)``; ``vmap``-ed over the batch, one ``jit`` trace per input shape.

        ``params`` defaults to :attr:`params` (same structure). ``t_max``
        overrides the compile-time window (no retracing). ``on_overflow="raise"``
        raises :class:`BufferOverflowError` when a buffer was too small.
        ``trace_times`` (``[G]`` times) records ``v`` and ``I`` of
        ``trace_populations`` (default: every non-input population) at those times.
        """
        dtype = self._dtype
        check_run_options(on_overflow, dtype)
        t_max_val = check_t_max(t_max, self._t_max)
        params = self._checked_biases(check_params(params, self._params, dtype))
        times, neurons, batch_shape, is_sorted = check_inputs(inputs, self._inputs, self._name, dtype)
        if is_sorted:
            warn_if_inputs_beyond_window(times, neurons, t_max_val)
        grid, pops = self._check_trace(trace_times, trace_populations, dtype)
        t_arg = t_max_val if is_tracer(t_max_val) else np.asarray(t_max_val, dtype)

        def simulate() -> tuple[Recording, Array]:
            return self._jitted(
                params,
                times,
                neurons,
                t_arg,
                grid,
                trace_populations=pops,
                inputs_sorted=is_sorted,
                batch_shape=batch_shape,
            )

        rec, n_bad = simulate()
        # Inputs validated on the host cannot be bad; traced ones are checked by the program (a flag).
        if not is_sorted:
            raise_input_error(n_bad)
        # An automatically sized buffer that overflowed in a concrete run: grow it and run again, so that
        # the result is complete (under jit/grad the flag stays, and fit grows between steps).
        grew: list[str] = []
        before = max(self._auto.values()) if self._auto else 0
        while self._auto and (over := overflowed(rec, self._auto)):
            grew += [p for p in over if p not in grew]
            self.grow_buffers(over)
            rec, n_bad = simulate()
        if grew:
            after = max(self._auto.values())
            warnings.warn(
                f"population(s) {', '.join(grew)}: the automatically sized spike buffer of {before} spikes per "
                f"neuron overflowed; grown to {after} and run again (compile with spikes_per_neuron={after}, or "
                "set max_spikes, to size it yourself and skip the recompilation)",
                BufferGrowthWarning,
                stacklevel=2,
            )
        if on_overflow == "raise":
            self._raise_overflow(rec)
        return rec

    def _check_trace(self, trace_times: Any, pops: Sequence[str] | None, dtype: np.dtype) -> tuple[Any, tuple]:
        plans = self._plans
        if trace_times is None:
            if pops:
                raise InputError("trace_populations needs trace_times (the time grid to sample on)")
            return None, ()
        if pops is None:
            pops = tuple(plans)
        pops = tuple(pops)
        for p in pops:
            if p in self._removed:
                raise InputError(f"trace_populations: {population_problem(p, self._removed, list(plans))}")
            if p not in plans:
                raise InputError(f"trace_populations: '{p}' is not a non-input population; choose from {list(plans)}")
        grid = jnp.asarray(trace_times, dtype)
        if grid.ndim != 1:
            raise InputError(f"trace_times must be a 1-D array of times, got shape {list(grid.shape)}")
        if not is_tracer(trace_times):
            # The host value, not ``grid``: inside ``jit`` even a constant grid is traced.
            g = np.asarray(trace_times, dtype)
            if not np.all(np.isfinite(g)) or np.any(g < 0):
                raise InputError("trace_times must be finite and >= 0")
        return grid, pops

    def _raise_overflow(self, rec: Recording) -> None:
        plans = self._plans

        def buffer_text(name: str) -> str:
            plan = plans[name]
            return f"buffer of {plan.buffer} ({plan.size} neurons x {plan.buffer // plan.size} spikes)"

        def fix(name: str) -> str:
            per = plans[name].buffer // plans[name].size
            return (
                f"enlarge it with snncomp.compile(..., spikes_per_neuron=N) with N > {per}, "
                "or bound the population with max_spikes"
            )

        raise_if_overflowed(rec, buffer_text, fix)

    # -- reporting ------------------------------------------------------------
    def report(self) -> Report:
        program = self._program
        schedule = self._result.annotations["schedule"]
        net = self._result.network
        stages = [(s.index, s.strategy, s.describe()) for s in program.stages]
        resources = {
            **network_resources(net, self._params),
            "synapses": sum(e.n_synapses for e in net.edges),
            "buffer_slots_per_sample": sum(schedule.buffers.values()),
        }
        return Report(
            target="jax",
            network=net.name,
            dtype=program.dtype,
            t_max=program.t_max,
            pipeline=self._options["pipeline"],
            schedule=schedule.text(),
            stages=stages,
            buffers=dict(schedule.buffers),
            resources=resources,
            compile_seconds=self._seconds,
            remarks=[str(r) for r in self._result.remarks],
            removed=dict(self._removed),
        )

    def __repr__(self) -> str:
        p = self._program
        return f"JaxExecutable(network={p.name!r}, dtype={p.dtype}, t_max={p.t_max})"


_JAX_OPTIONS = ("t_max", "dtype", "spikes_per_neuron", "strategy", "adjoint", "early_stop", "event_loop")


_MAX_AUTO_SPIKES = 4096  # spikes per neuron an automatically sized buffer may grow to


def compile_jax(network: Network, _auto_spikes_per_neuron: int | None = None, **options: Any) -> JaxExecutable:
    """Compile ``network`` for the jax target (``snncomp.compile(net, target="jax", ...)``; options there)."""
    auto = _auto_spikes_per_neuron
    unknown = sorted(set(options) - set(_JAX_OPTIONS))
    if unknown:
        raise TargetError(
            f"target 'jax' has no option {', '.join(map(repr, unknown))}; valid options: {', '.join(_JAX_OPTIONS)}"
        )
    from ...passes import pipeline
    from ._program import initial_params, lower

    start = time.perf_counter()
    t_max, dtype = check_compile_options(options)
    strategy = options.get("strategy", "auto")
    if strategy not in ("auto", "event-queue"):
        raise TargetError(f"strategy must be 'auto' or 'event-queue', got {strategy!r}")
    pass_options: dict[str, Any] = {"strategy": strategy}
    if options.get("spikes_per_neuron") is not None:
        pass_options["spikes_per_neuron"] = int(options["spikes_per_neuron"])
    if auto is not None:
        pass_options["auto_spikes_per_neuron"] = int(auto)
    stop = options.get("early_stop")
    if stop:
        names = (stop,) if isinstance(stop, str) else stop
        if not isinstance(names, (tuple, list)) or not all(isinstance(x, str) for x in names):
            raise TargetError(f"early_stop must be a population name or a sequence of names, got {stop!r}")
        pass_options["early_stop"] = tuple(names)
    pipe = pipeline("jax", **pass_options)
    result = pipe.run(network)
    program = lower(
        result,
        dtype=dtype,
        t_max=t_max,
        adjoint=options.get("adjoint", "eventprop"),
        event_loop=options.get("event_loop", "auto"),
    )
    params = initial_params(result.network, dtype)
    seconds = time.perf_counter() - start
    exe = JaxExecutable(program, params, result, {"pipeline": str(pipe), **options}, seconds)
    exe._source = network
    return exe
