"""Adjoints: how gradients flow through a stage of the event program.

Two interchangeable adjoints (as diffrax offers several), chosen with
``snncomp.compile(..., adjoint="eventprop" | "autodiff")``:

* :class:`EventPropAdjoint` wraps each stage in an ``equinox.filter_custom_vjp``
  whose backward pass is the EventProp adjoint of ``docs/eventprop.md``: the
  adjoint state ``(lambda_v, lambda_I)`` of every neuron runs backward in time
  in closed form between events (the transpose of the forward transition
  matrix), and jumps at spikes by the implicit-function rule. It needs only the
  recorded spikes (time, neuron, current at the spike) and recomputes every
  delivery from them: memory O(events), independent of the simulated duration.
* :class:`AutodiffAdjoint` differentiates the forward pass itself with JAX. It
  is the reference: it exists for layer-parallel stages, whose forward is a
  closed form plus a root polished by one Newton step with the implicit-function
  derivative; event-queue stages (a ``lax.while_loop``) cannot be
  reverse-differentiated, and asking for it there is an error at compile time.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array

from ...errors import TargetError
from ...ir import SPIKING_KINDS
from ._events import SpikeBuffer, effective_weight
from ._solver import AbstractCrossingSolver
from ._stage import AbstractStage

__all__ = ["AbstractAdjoint", "AutodiffAdjoint", "EventPropAdjoint", "get_adjoint"]


class AbstractAdjoint(eqx.Module):
    """How a stage's outputs are differentiated."""

    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        """Run ``stage`` so that ``jax.grad`` of anything downstream is correct."""

    def check(self, stages: tuple[AbstractStage, ...]) -> None:
        """Raise :class:`TargetError` if this adjoint cannot differentiate these stages."""


class _Polished(AbstractCrossingSolver):
    """A solver whose result gets one Newton step carrying the implicit-function derivative.

    The root search itself then needs no derivative (it may be a ``while_loop``), which is what
    lets plain autodiff differentiate the forward pass.
    """

    inner: AbstractCrossingSolver
    name: ClassVar[str] = "polished"
    polish_default: ClassVar[bool] = True

    def peak(self, u0: Array, i0: Array, nrn: Any) -> Any:
        return self.inner.peak(u0, i0, nrn)

    def root(self, u0: Array, i0: Array, nrn: Any, peak: Any) -> Array:
        return self.inner.root(u0, i0, nrn, peak)


class AutodiffAdjoint(AbstractAdjoint):
    """Plain JAX autodiff through the forward pass (layer-parallel stages only)."""

    name: ClassVar[str] = "autodiff"

    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        polished = eqx.tree_at(
            lambda s: [p.solver for p in s.populations],
            stage,
            [_Polished(p.solver) for p in stage.populations],
        )
        return polished.biased(params)(params, buffers, t_max)

    def check(self, stages: tuple[AbstractStage, ...]) -> None:
        queued = [p.name for s in stages if not s.reverse_differentiable for p in s.populations]
        if queued:
            raise TargetError(
                f"adjoint='autodiff' cannot differentiate event-queue stages (populations {queued}): their "
                "forward pass is a lax.while_loop; use adjoint='eventprop' (the default)"
            )


class EventPropAdjoint(AbstractAdjoint):
    """Exact gradients by the EventProp adjoint (``docs/eventprop.md``)."""

    name: ClassVar[str] = "eventprop"

    def __call__(
        self, stage: AbstractStage, params: dict, buffers: dict[str, SpikeBuffer], t_max: Array
    ) -> dict[str, SpikeBuffer]:
        sub = _stage_params(stage, params)
        ups = stage.upstream()
        times = {n: buffers[n].times for n in ups}
        # The current at each upstream spike is a residual of *that* stage's adjoint, not an input here.
        rest = {n: (buffers[n].neurons, lax.stop_gradient(buffers[n].current), buffers[n].overflow) for n in ups}
        # Whether a buffer is sorted is static (user inputs sorted on the host or not): it stays out of the
        # custom_vjp's arguments, which would turn it into an array.
        unsorted = frozenset(n for n in ups if not buffers[n].sorted)
        return _with_eventprop(stage, unsorted)(sub, times, rest, lax.stop_gradient(t_max))


def _stage_params(stage: AbstractStage, params: dict) -> dict:
    """The parameters a stage reads: its edges' weights and delays, its populations' biases."""
    keys = tuple(e.key for e in stage.edges())
    sub = {"weight": {k: params["weight"][k] for k in keys}, "delay": {k: params["delay"][k] for k in keys}}
    if "bias" in params:
        sub["bias"] = {p.name: params["bias"][p.name] for p in stage.populations}
    return sub


def _rebuild(times: dict[str, Array], rest: dict[str, tuple], unsorted: frozenset[str]) -> dict[str, SpikeBuffer]:
    return {
        n: SpikeBuffer(
            times=times[n], neurons=rest[n][0], current=rest[n][1], overflow=rest[n][2], sorted=n not in unsorted
        )
        for n in times
    }


def _with_eventprop(stage: AbstractStage, unsorted: frozenset[str] = frozenset()) -> Any:
    """``stage`` as a function of (weights/delays, upstream spike times) whose VJP is EventProp.

    The stage (neuron constants, masks) is closed over: it is a compile-time constant.
    """

    @jax.custom_vjp
    def run(sub: dict, times: dict, rest: dict, t_max: Array) -> dict[str, SpikeBuffer]:
        return stage.biased(sub)(sub, _rebuild(times, rest, unsorted), t_max)

    def fwd(sub: dict, times: dict, rest: dict, t_max: Array) -> tuple[dict, tuple]:
        out = stage.biased(sub)(sub, _rebuild(times, rest, unsorted), t_max)
        return out, (sub, times, rest, t_max, out)

    def bwd(res: tuple, grad_out: dict) -> tuple:
        sub, times, rest, t_max, out = res
        buffers = _rebuild(times, rest, unsorted)
        ct = {name: jnp.where(jnp.isfinite(buf.times), grad_out[name].times, 0.0) for name, buf in out.items()}
        d_sub, d_times = stage.biased(sub).eventprop(sub, buffers, out, ct, t_max)
        return d_sub, d_times, None, None

    run.defvjp(fwd, bwd)
    return run


ADJOINTS: dict[str, type[AbstractAdjoint]] = {"eventprop": EventPropAdjoint, "autodiff": AutodiffAdjoint}


def get_adjoint(name: str | AbstractAdjoint) -> AbstractAdjoint:
    """The adjoint called ``name`` (or the instance given)."""
    if isinstance(name, AbstractAdjoint):
        return name
    if name not in ADJOINTS:
        raise TargetError(f"unknown adjoint {name!r}; choose one of {', '.join(sorted(ADJOINTS))}")
    return ADJOINTS[name]()


# -- hardware in the loop: EventProp on spike times recorded elsewhere -------------------------------
def _currents_at_spikes(program: Any, params: dict, buffers: dict[str, SpikeBuffer], pop: Any, t_max: Array) -> Array:
    """``I`` of each recorded spike's neuron just before the spike, replayed from every delivery."""
    buf = buffers[pop.name]
    ok = buf.neurons >= 0
    j = jnp.where(ok, buf.neurons, 0)
    tau_s = jnp.broadcast_to(pop.nrn.tau_syn, (pop.size,))[j]
    # A bias starts the current at i_init (``_dynamics``); it decays like any delivery's.
    i_init = jnp.broadcast_to(pop.nrn.i_init, (pop.size,))[j]
    total = i_init * jnp.exp(-jnp.where(ok, buf.times, 0.0) / tau_s)
    trig = jnp.zeros(buf.times.shape, bool)
    for e in pop.edges_in:
        src = buffers[e.source]
        s = src.times + params["delay"][e.key]
        live = (src.neurons >= 0) & (s < t_max)
        w = effective_weight(e, params)[jnp.where(live, src.neurons, 0)][:, j]  # [S, K]
        before = live[:, None] & (s[:, None] < buf.times[None, :])
        decay = jnp.exp(-jnp.where(before, buf.times[None, :] - s[:, None], 0.0) / tau_s[None, :])
        total = total + jnp.sum(jnp.where(before, w * decay, 0.0), axis=0)
        trig = trig | jnp.any(live[:, None] & (s[:, None] == buf.times[None, :]) & (w > 0), axis=0)
    if pop.nrn.has_jump:
        # Instantaneous synapses: the slot holds whether the spike came at an input's arrival (the
        # event queue's convention, see _queue), the current itself is 0.
        total = jnp.where(jnp.broadcast_to(pop.nrn.jump, (pop.size,))[j], trig.astype(total.dtype), total)
    return jnp.where(ok, total, 0.0)


def _program_backward(
    program: Any, params: dict, buffers: dict[str, SpikeBuffer], ct: dict[str, Array], t_max: Array
) -> tuple[dict, dict[str, Array]]:
    """EventProp through every stage in reverse order; cotangents of spike times flow upstream."""
    grads = {group: {k: jnp.zeros_like(v) for k, v in values.items()} for group, values in params.items()}
    ct = dict(ct)
    for name, buf in buffers.items():
        ct.setdefault(name, jnp.zeros_like(buf.times))
    for stage in reversed(program.stages):
        sub = _stage_params(stage, params)
        stage = stage.biased(sub)
        out = {p.name: buffers[p.name] for p in stage.populations if p.kind in SPIKING_KINDS and p.name in buffers}
        if not out:
            continue
        stage_ct = {n: jnp.where(jnp.isfinite(out[n].times), ct[n], 0.0) for n in out}
        d_sub, d_times = stage.eventprop(sub, buffers, out, stage_ct, t_max)
        for group, values in d_sub.items():
            for k, v in values.items():
                grads[group][k] = grads[group][k] + v
        for n, v in d_times.items():
            ct[n] = ct[n] + v
    return grads, ct


def replay(
    program: Any,
    params: Mapping[str, Any],
    inputs: dict[str, tuple[Array, Array]],
    spikes: dict[str, tuple[Array, Array]],
    t_max: Array,
) -> dict[str, Array]:
    """Spike times recorded elsewhere (the BSS-2 mock), made differentiable by EventProp on the model.

    One sample. ``inputs[name] = (times, neurons)`` and ``spikes[population] = (times, neurons)`` (model
    units, padded with ``+inf``/``-1``; spikes sorted by time). Returns ``{population: times}``, equal to
    the given times, whose VJP is EventProp on ``program`` (the software model) evaluated at the recorded
    spikes: the states at the spikes are recovered by replaying every delivery in closed form. Gradients
    flow to ``params`` and to the input spike times.
    """
    plans = program.plans()
    in_times = {n: inputs[n][0] for n in inputs}
    # Everything but the parameters and input times enters as an argument without a cotangent:
    # under ``jit`` these are tracers, which a ``custom_vjp`` must not close over.
    fixed = (
        {n: inputs[n][1] for n in inputs},
        {n: lax.stop_gradient(spikes[n][0]) for n in spikes},
        {n: spikes[n][1] for n in spikes},
        lax.stop_gradient(jnp.asarray(t_max)),
    )

    def buffers_of(p: dict, times: dict, fixed: tuple) -> dict[str, SpikeBuffer]:
        in_neurons, rec_times, rec_neurons, t_max = fixed
        bufs = {
            # Input times may come in any order (a traced batch is not sorted on the host).
            n: SpikeBuffer(
                times=times[n],
                neurons=in_neurons[n],
                current=jnp.zeros_like(times[n]),
                overflow=jnp.zeros((), bool),
                sorted=False,
            )
            for n in times
        }
        for n in rec_times:
            bufs[n] = SpikeBuffer(
                times=rec_times[n],
                neurons=rec_neurons[n],
                current=jnp.zeros_like(rec_times[n]),
                overflow=jnp.zeros((), bool),
            )
        # Currents need every upstream buffer, so fill them stage by stage.
        for stage in program.stages:
            for pop in stage.populations:
                if pop.name in rec_times:
                    b = bufs[pop.name]
                    plan = plans[pop.name]
                    if "bias" in p:
                        plan = eqx.tree_at(lambda q: q.nrn, plan, plan.nrn.with_bias(p["bias"][pop.name]))
                    cur = _currents_at_spikes(program, p, bufs, plan, t_max)
                    bufs[pop.name] = SpikeBuffer(times=b.times, neurons=b.neurons, current=cur, overflow=b.overflow)
        return bufs

    @jax.custom_vjp
    def run(p: dict, times: dict, fixed: tuple) -> dict[str, Array]:
        return dict(fixed[1])

    def fwd(p: dict, times: dict, fixed: tuple) -> tuple[dict, tuple]:
        return dict(fixed[1]), (p, times, fixed)

    def bwd(res: tuple, ct: dict) -> tuple:
        p, times, fixed = res
        bufs = buffers_of(p, times, fixed)
        grads, ct_all = _program_backward(program, p, bufs, ct, fixed[3])
        d_times = {n: jnp.where(jnp.isfinite(times[n]), ct_all.get(n, jnp.zeros_like(times[n])), 0.0) for n in times}
        return grads, d_times, None

    run.defvjp(fwd, bwd)
    # As a dict whatever the caller gave (a Params): the backward rule builds its cotangent as one.
    return run(dict(params), in_times, fixed)
