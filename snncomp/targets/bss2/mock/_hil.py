"""Hardware-in-the-loop gradients of ``bss2-mock`` runs: the emulator's spikes, the model's EventProp.

The forward pass is the emulator's; the recorded spike times pass through :func:`differentiable_spikes`,
whose VJP is EventProp on the software model of the current placement
(:func:`~snncomp.targets.bss2.dequantized_network` of it, compiled by the jax target's own
:func:`~snncomp.targets.jax_event.compile_jax` once per placement -- never through ``snncomp.compile``),
with the states at the spikes recovered by :func:`snncomp.targets.jax_event.replay` of the recorded
spikes. Weights and input times enter straight through (value: what the chip realises; gradient: the
float parameter). See ``docs/bss2.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ._options import MockOptions
from ._placements import Placement
from ._weights import requantize_jax

__all__ = ["differentiable_spikes", "effective_params", "recorded_times", "software_program"]


def software_program(placement: Placement, options: MockOptions) -> Any:
    """The jax target's program of the network ``placement`` realises (built once per placement)."""
    if placement.software is None:
        from ...jax_event import compile_jax
        from ..effective import dequantized_network

        spn = options.spikes_per_neuron
        # Called while ``jit`` traces the run: build the program's arrays eagerly, not as tracers
        # that would leak into the cache.
        with jax.ensure_compile_time_eval():
            exe = compile_jax(
                dequantized_network(placement.result),
                t_max=options.t_max,
                dtype=np.dtype(options.dtype).name,
                **({"spikes_per_neuron": spn} if spn is not None else {}),
            )
            placement.software = exe.lowered
    return placement.software


def readout_delay_model(placement: Placement, options: MockOptions) -> float:
    """The mock's constant readout latency in model seconds."""
    tick = placement.config.chip.timestamp
    return float(options.mock.readout_delay / tick * np.asarray(placement.arrays.tick_model))


def differentiable_spikes(
    placement: Placement,
    options: MockOptions,
    params: dict,
    inputs: dict[str, tuple[Array, Array]],
    spikes: dict[str, tuple[Array, Array]],
    t_max: Array,
) -> dict[str, Array]:
    """Hardware-in-the-loop gradients: the recorded spike times, differentiable by EventProp on the model.

    Called once per sample (inside ``vmap``) with model units throughout: ``params`` are the
    parameters with every weight replaced, straight through, by the weight the chip realises
    (``w + stop_gradient(effective - w)``, :func:`effective_params`), ``inputs[name] = (times, neurons)``
    the input spikes as the FPGA released them (8 ns grid, straight through to the given times),
    ``spikes[pop] = (times, neurons)`` what the mock recorded (sorted, padded with ``+inf``/``-1``).
    Returns ``{pop: times}``, equal to the recorded times; their VJP is EventProp on the software model
    of the chip (:func:`software_program`), with the states at the spikes recovered by replaying the
    recorded spikes (:func:`snncomp.targets.jax_event.replay`). The configured readout delay is a
    calibrated constant, so it is taken off before the replay (the neuron fired that much earlier) and
    put back.
    """
    from ...jax_event import replay

    program = software_program(placement, options)
    delay = readout_delay_model(placement, options)
    shifted = {pop: (t - delay, n) for pop, (t, n) in spikes.items()}
    times = replay(program, params, inputs, shifted, t_max)
    return {pop: times[pop] + delay for pop in spikes}


def effective_params(placement: Placement, params: Mapping[str, Any], dtype: Any) -> dict:
    """``params`` with each weight replaced, straight through, by what the chip realises (see the hook)."""
    _, effective, _, _ = requantize_jax(
        placement.layout, {k: lax.stop_gradient(v) for k, v in params["weight"].items()}, dtype
    )
    # Into instantaneous synapses the chip's current weight stands for factor * the model weight: the
    # replay's weight is factor * v in its gradient (the chip's value in its value).
    factors = {k: p.factor for k, p in placement.layout.projections.items() if np.any(p.factor != 1.0)}

    def straight(k: str, v: Array) -> Array:
        scaled = v * jnp.asarray(factors[k], v.dtype)[None, :] if k in factors else v
        return scaled + lax.stop_gradient(effective[k] - scaled)

    weight = {k: straight(k, v) if k in effective else v for k, v in params["weight"].items()}
    return {"weight": weight, "delay": params["delay"]}


def recorded_times(
    placement: Placement,
    options: MockOptions,
    input_names: Sequence[str],
    params: Mapping[str, Any],
    times: dict,
    neurons: dict,
    spikes: dict[str, tuple[Array, Array]],
    t_max: Array,
) -> dict[str, Array]:
    """The recorded spike times ``spikes[pop][0]`` (``[samples, ...]``), differentiable hardware in the loop
    (:func:`differentiable_spikes` per sample) where the network has inputs, else constants."""
    if not input_names:
        return {k: lax.stop_gradient(v[0]) for k, v in spikes.items()}
    st_params = effective_params(placement, params, options.dtype)
    tick = placement.arrays.tick_model

    def hook(ts: dict, ns: dict, sp: dict) -> dict:
        released = {}
        for name in input_names:
            t = ts[name]
            q = jnp.floor(t / tick + 0.5) * tick
            released[name] = (t + lax.stop_gradient(jnp.where(jnp.isfinite(t), q - t, 0.0)), ns[name])
        return differentiable_spikes(placement, options, st_params, released, sp, t_max)

    out: dict[str, Array] = jax.vmap(hook)(times, neurons, spikes)
    return out
