"""Lowering: a scheduled graph becomes an :class:`EventProgram`, the jax target's artifact."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Bool

from ...errors import PrecisionWarning, TargetError
from ...ir import SPIKING_KINDS, Network
from ...passes import CompileResult, Schedule
from ...runtime import Params
from ._adjoint import AbstractAdjoint, EventPropAdjoint, get_adjoint
from ._dynamics import NeuronParams
from ._events import EdgeSpec, SpikeBuffer, incoming
from ._layer import LayerParallelStage
from ._queue import EventQueueStage
from ._solver import AbstractCrossingSolver, BracketedNewtonSolver, JumpSolver, choose_solver
from ._stage import AbstractStage, PopulationPlan
from ._trace import trace

__all__ = ["EventProgram", "ProgramOutput", "initial_params", "lower"]

# "Unbounded" spike budget: the buffer bounds the count anyway.
_UNBOUNDED = np.iinfo(np.int32).max


class ProgramOutput(eqx.Module):
    """What one sample's run produces (the runtime turns it into a ``Recording``)."""

    spikes: dict[str, SpikeBuffer]
    input_error: Bool[Array, ""]
    traces: dict[str, tuple[Array, Array]] | None


class EventProgram(eqx.Module):
    """The lowered network: ordered stages over fixed-size spike buffers.

    Calling it simulates one sample: ``program(params, inputs, t_max, grid)``
    with ``inputs[name] = (times, neurons)``. It is a pure function, ``jit``-
    and ``vmap``-able; parameters (weights, delays) are arguments, neuron
    constants are part of the program.
    """

    name: str = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    t_max: float | None = eqx.field(static=True)
    inputs: tuple[tuple[str, int], ...] = eqx.field(static=True)
    edges: tuple[EdgeSpec, ...]
    stages: tuple[AbstractStage, ...]
    adjoint: AbstractAdjoint = eqx.field(default_factory=EventPropAdjoint)
    """How gradients flow through each stage (EventProp by default, see ``_adjoint``)."""

    def plans(self) -> dict[str, PopulationPlan]:
        """Every non-input population's plan, in stage order."""
        return {p.name: p for s in self.stages for p in s.populations}

    def spiking(self) -> tuple[str, ...]:
        """Names of the populations that can spike (``lif``), in stage order."""
        return tuple(p.name for p in self.plans().values() if p.kind in SPIKING_KINDS)

    def __call__(
        self,
        params: dict,
        inputs: dict[str, tuple[Array, Array]],
        t_max: Array,
        grid: Array | None = None,
        trace_populations: tuple[str, ...] = (),
        inputs_sorted: bool = False,
    ) -> ProgramOutput:
        dtype = jnp.dtype(self.dtype)
        t_max = jnp.asarray(t_max, dtype)
        buffers: dict[str, SpikeBuffer] = {}
        bad = jnp.zeros((), bool)
        for name, size in self.inputs:
            times, neurons = inputs[name]
            times = times.astype(dtype)
            real = neurons != -1
            ok = real & (neurons >= 0) & (neurons < size) & (times >= 0) & jnp.isfinite(times)
            bad = bad | jnp.any(real & ~ok)
            buffers[name] = SpikeBuffer(
                times=jnp.where(ok, times, jnp.inf),
                neurons=jnp.where(ok, neurons, -1).astype(jnp.int32),
                current=jnp.zeros(times.shape, dtype),
                overflow=jnp.zeros((), bool),
                sorted=inputs_sorted,
            )
        for stage in self.stages:
            out = self.adjoint(stage, params, buffers, t_max)
            buffers.update(out)
            stop_on: tuple[str, ...] = getattr(stage, "stop_on", ())
            if stop_on:
                t_max = _stopped_at(stage, stop_on, out, t_max)
        traces = None
        if grid is not None:
            traces = {}
            plans = self.plans()
            for name in trace_populations:
                p = plans[name]
                inc = incoming(p.edges_in, {p.name: 0}, p.size, buffers, params, t_max, dtype)
                nrn = p.nrn.with_bias(params["bias"][name]) if "bias" in params else p.nrn
                traces[name] = trace(nrn, inc, buffers.get(name), grid, t_max)
        return ProgramOutput(
            spikes={n: buffers[n] for n in self.spiking()},
            input_error=bad,
            traces=traces,
        )


def _stopped_at(stage: AbstractStage, stop_on: tuple[str, ...], out: dict[str, SpikeBuffer], t_max: Array) -> Array:
    """Where a stage with ``stop_on`` ended: its last event once every such neuron has spiked, else ``t_max``.

    Later stages run up to there (what they would see after it was never simulated). A window end is not
    differentiable, so it is a constant to the gradient.
    """
    sizes = {p.name: p.size for p in stage.populations}
    done = jnp.ones((), bool)
    for name in stop_on:
        buf = out[name]
        size = sizes[name]
        fired = jnp.zeros((size + 1,), bool).at[jnp.where(buf.neurons >= 0, buf.neurons, size)].set(True)
        done = done & jnp.all(fired[:size])
    last = jnp.max(jnp.stack([jnp.max(jnp.where(jnp.isfinite(b.times), b.times, -jnp.inf)) for b in out.values()]))
    return lax.stop_gradient(jnp.where(done, jnp.minimum(last, t_max), t_max))


def _columns(node: object, dtype: np.dtype) -> dict[str, np.ndarray]:
    """A node's per-neuron columns for :class:`NeuronParams` (see ``_dynamics`` for the shifted frame)."""
    size = node.size  # type: ignore[attr-defined]

    def col(value: object) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, np.float64), (size,))

    kind = node.kind  # type: ignore[attr-defined]
    jump = np.full((size,), bool(node.instantaneous))  # type: ignore[attr-defined]
    bias = col(node.bias)  # type: ignore[attr-defined]
    if kind == "if":
        # No leak: tau_mem = inf (alpha = 1), the bias is a drift; the current stays 0 (placeholder tau_syn).
        tau_mem, tau_syn, rest = np.full((size,), np.inf), np.ones((size,)), np.zeros((size,))
        drift, u_init, i_init = bias, np.zeros((size,)), np.zeros((size,))
    else:
        tau_mem = col(node.tau_mem)  # type: ignore[attr-defined]
        tau_syn = tau_mem if jump.all() else col(node.tau_syn)  # type: ignore[attr-defined]
        rest = col(node.v_leak) + bias  # type: ignore[attr-defined]
        drift, u_init = np.zeros((size,)), -bias
        i_init = np.zeros((size,)) if jump.all() else -bias
    common = {
        "bias": bias,
        "tau_mem": tau_mem,
        "tau_syn": tau_syn,
        "v_leak": rest,
        "jump": jump,
        "drift": drift,
        "u_init": u_init,
        "i_init": i_init,
    }
    if kind in SPIKING_KINDS:
        max_spikes = node.max_spikes if node.max_spikes is not None else _UNBOUNDED  # type: ignore[attr-defined]
        return {
            **common,
            "theta": col(node.v_threshold) - rest,  # type: ignore[attr-defined]
            "u_reset": col(node.v_reset) - rest,  # type: ignore[attr-defined]
            "t_refrac": col(node.t_refrac),  # type: ignore[attr-defined]
            "max_spikes": np.full((size,), max_spikes, np.int64),
            "spiking": np.ones((size,), bool),
        }
    return {
        **common,
        "theta": np.ones((size,)),  # unused: li neurons never spike
        "u_reset": np.zeros((size,)),
        "t_refrac": np.zeros((size,)),
        "max_spikes": np.zeros((size,), np.int64),
        "spiking": np.zeros((size,), bool),
    }


def _concat_params(nodes: list, dtype: np.dtype) -> NeuronParams:
    cols = [_columns(n, dtype) for n in nodes]
    merged = {k: np.concatenate([c[k] for c in cols]) for k in cols[0]}
    return NeuronParams.build(merged, int(sum(n.size for n in nodes)), dtype)


def lower(
    result: CompileResult,
    *,
    dtype: np.dtype,
    t_max: float | None,
    adjoint: str | AbstractAdjoint = "eventprop",
    event_loop: str = "auto",
) -> EventProgram:
    """Lower a graph that went through the ``jax`` pipeline (it needs the ``schedule`` annotation).

    ``event_loop`` chooses how event-queue stages run: ``"auto"``, ``"native"`` or ``"vectorized"``
    (:class:`EventQueueStage`); ``"vectorized"`` also keeps layer-parallel stages in XLA
    (:class:`LayerParallelStage`: in C otherwise, where the population allows it).
    """
    net: Network = result.network
    _warn_precision(net, np.dtype(dtype))
    schedule: Schedule | None = result.annotations.get("schedule")
    if schedule is None:
        raise TargetError("the jax target needs a scheduled graph: run the 'schedule' pass (snncomp.pipeline('jax'))")
    nodes = {n.name: n for n in net.nodes}
    edges: list[EdgeSpec] = []
    for key, e in zip(net.edge_keys(), net.edges):
        edges.append(
            EdgeSpec(
                key=key,
                source=e.source,
                target=e.target,
                source_size=nodes[e.source].size,
                target_size=nodes[e.target].size,
                mask=None if e.mask is None else jnp.asarray(e.mask),
            )
        )
    # li populations never spike, so projections out of them carry nothing.
    live = [e for e in edges if nodes[e.source].kind != "li"]

    def plan(name: str) -> PopulationPlan:
        node = nodes[name]
        if node.kind == "if":
            solver: AbstractCrossingSolver = JumpSolver()
        elif node.kind == "lif":
            solver = choose_solver(np.asarray(node.tau_mem), np.asarray(node.tau_syn))
        else:
            solver = BracketedNewtonSolver()  # never called: li has no threshold
        return PopulationPlan(
            name=name,
            kind=node.kind,
            size=node.size,
            buffer=int(schedule.buffers.get(name, 0)),
            nrn=NeuronParams.build(_columns(node, dtype), node.size, dtype),
            solver=solver,
            edges_in=tuple(e for e in live if e.target == name),
        )

    # The C layer kernel has no derivative of its own: only EventProp (which never differentiates a
    # stage's forward pass) may use it.
    layer_loop = event_loop if isinstance(get_adjoint(adjoint), EventPropAdjoint) else "vectorized"
    stages: list[AbstractStage] = []
    for st in schedule.stages:
        plans = tuple(plan(p) for p in st.populations)
        if st.strategy == "layer-parallel":
            stages.append(LayerParallelStage(index=st.index, populations=plans, loop=layer_loop))
            continue
        members = set(st.populations)
        offsets: dict[str, int] = {}
        total = 0
        for p in plans:
            offsets[p.name] = total
            total += p.size
        queue = EventQueueStage(
            index=st.index,
            populations=plans,
            nrn=_concat_params([nodes[p] for p in st.populations], dtype),
            external=tuple(e for e in live if e.target in members and e.source not in members),
            internal=tuple(e for e in live if e.target in members and e.source in members),
            offsets=offsets,
            n_total=total,
            stop_on=st.stop_on,
            loop=event_loop,
        )
        queue.check_loop()
        stages.append(queue)
    return EventProgram(
        name=net.name,
        dtype=np.dtype(dtype).name,
        t_max=t_max,
        inputs=tuple((n.name, n.size) for n in net.nodes if n.kind == "input"),
        edges=tuple(edges),
        stages=tuple(stages),
        adjoint=_checked_adjoint(adjoint, tuple(stages)),
    )


# Below this tau_syn / tau_mem (or above its inverse) float32 stops resolving the two exponentials of a
# current-based neuron: measured on NIR imports, ratio 1e-6 matched fewer spikes in float32 than 1e-4.
_FLOAT32_MIN_RATIO = 1e-3


def _warn_precision(net: Network, dtype: np.dtype) -> None:
    """Warn where a population's time constants are beyond ``dtype``'s resolution (float32 only)."""
    if dtype != np.float32:
        return
    for node in net.nodes:
        if node.kind not in ("lif", "li") or node.instantaneous:
            continue
        ratio = np.asarray(node.tau_syn, np.float64) / np.asarray(node.tau_mem, np.float64)
        worst = float(np.min(np.minimum(ratio, 1.0 / ratio)))
        if worst < _FLOAT32_MIN_RATIO:
            warnings.warn(
                f"population '{node.name}': tau_syn / tau_mem reaches {float(ratio.min()):.3g}"
                f"{'' if ratio.min() < 1 else ' (or its inverse)'}, beyond float32's resolution for a current-based "
                f"neuron (below {_FLOAT32_MIN_RATIO:g} spikes near threshold become unreliable); compile with "
                "dtype='float64', or use tau_syn=0 (exact instantaneous synapses) if the synapse is meant to be "
                "instantaneous",
                PrecisionWarning,
                stacklevel=4,
            )


def _checked_adjoint(name: str | AbstractAdjoint, stages: tuple[AbstractStage, ...]) -> AbstractAdjoint:
    adj = get_adjoint(name)
    adj.check(stages)
    return adj


def initial_params(net: Network, dtype: np.dtype) -> Params:
    """``Params(weight={edge_key: [src, tgt]}, delay={edge_key: scalar}, bias={population: [n]})``.

    ``bias`` has an entry per non-input population (its IR ``bias``, per neuron).
    """
    weight: dict[str, Array] = {}
    delay: dict[str, Array] = {}
    for key, e in zip(net.edge_keys(), net.edges):
        weight[key] = jnp.asarray(np.asarray(e.weight, np.float64).astype(dtype))
        delay[key] = jnp.asarray(np.asarray(e.delay, np.float64).astype(dtype))
    bias = {
        n.name: jnp.asarray(np.broadcast_to(np.asarray(n.bias, np.float64), (n.size,)).astype(dtype))
        for n in net.nodes
        if n.kind != "input"
    }
    return Params(weight=weight, delay=delay, bias=bias)
