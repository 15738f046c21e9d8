"""Per-neuron analog parameters as the emulated chip realises them, with frozen fixed-pattern noise.

Units inside the emulator: time in FPGA clock cycles (*ticks*, 8 ns), potentials in CADC LSB relative to
each neuron's own leak potential, synaptic input in LSB. ``NeuronArrays`` holds what the run needs
(rates ``tick / tau``, threshold, reset, gains, refractory timing, spike budget); ``neuron_arrays`` builds
its fields (host arrays, padded later) from the ``HardwareConfig`` and a ``MockConfig``, drawing the
fixed-pattern noise per circuit from ``chip_seed`` so that it is a property of the (emulated) silicon,
not of the network.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Array, Float, Int

from ..config import HardwareConfig
from ._config import MockConfig

__all__ = ["FPN_FIELDS", "NeuronArrays", "circuit_deviations", "neuron_arrays"]

# Per-circuit deviations, in this order: relative (tau_mem, tau_exc, tau_inh, gain_exc, gain_inh) and
# additive in LSB (v_threshold, v_leak, v_reset).
FPN_FIELDS = ("tau_mem", "tau_exc", "tau_inh", "gain_exc", "gain_inh", "v_threshold", "v_leak", "v_reset")
_SMALLEST_TAU_FACTOR = 0.05  # a tau cannot flip sign however large the requested spread


class NeuronArrays(eqx.Module):
    """Everything the run needs per simulated neuron (``[N]`` each; times in ticks, potentials in LSB).

    ``a = tick / tau_mem``, ``be``/``bi`` the same for the excitatory/inhibitory synaptic input; ``theta``
    and ``reset`` are relative to the leak; ``gain_exc``/``gain_inh`` turn a 6-bit weight into an LSB jump
    of the synaptic input; the refractory period is ``counter`` cycles of a clock of ``clock_period``
    ticks; ``budget`` is the spike count the readout keeps per neuron.
    """

    a: Float[Array, " N"]
    be: Float[Array, " N"]
    bi: Float[Array, " N"]
    theta: Float[Array, " N"]
    reset: Float[Array, " N"]
    gain_exc: Float[Array, " N"]
    gain_inh: Float[Array, " N"]
    refractory: Float[Array, " N"]
    clock_period: Float[Array, " N"]
    counter: Float[Array, " N"]
    budget: Int[Array, " N"]


def circuit_deviations(config: HardwareConfig, mock: MockConfig, chip_seed: int) -> np.ndarray:
    """``float64[8, hemispheres, columns]``: the fixed-pattern deviation of every circuit (``FPN_FIELDS`` order).

    Relative deviations are ``spread * N(0, 1)``, offsets ``std * N(0, 1)`` LSB; all zero for a config
    without mismatch. The draw depends only on ``chip_seed`` and the chip's size.
    """
    chip = config.chip
    shape = (len(FPN_FIELDS), chip.hemispheres, chip.columns)
    z = np.random.default_rng(np.random.SeedSequence([int(chip_seed), 0x6D6F636B])).standard_normal(shape)
    scale = np.array(
        [
            mock.fpn_tau_mem,
            mock.fpn_tau_syn,
            mock.fpn_tau_syn,
            mock.fpn_gain,
            mock.fpn_gain,
            mock.fpn_v_threshold,
            mock.fpn_v_leak,
            mock.fpn_v_reset,
        ]
    )
    return z * scale[:, None, None]


def neuron_arrays(
    config: HardwareConfig,
    neuron_ids: np.ndarray,
    mock: MockConfig,
    chip_seed: int,
    budgets: np.ndarray,
    trims: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The simulated neurons' parameters as this emulated chip realises them (host arrays, ``NeuronArrays`` fields).

    A logical neuron of several shorted circuits takes the mean deviation of its circuits [I].
    ``trims`` (``[2, hemispheres, columns]``, a gain calibration's excitatory and inhibitory factors)
    multiply each circuit's synaptic gain.
    """
    chip = config.chip
    tick = chip.timestamp
    dev = circuit_deviations(config, mock, chip_seed)
    if trims is not None:
        dev = dev.copy()
        # The trim multiplies the circuit's gain: (1 + d) * t - 1 is its new relative deviation.
        dev[3:5] = (1.0 + dev[3:5]) * trims - 1.0
    rows = []
    for k in neuron_ids:
        n = config.neurons[int(k)]
        cols = slice(n.column, n.column + n.width)
        d = dev[:, n.hemisphere, cols].mean(axis=1)
        backend = next((b for b in config.backends if b.hemisphere == n.hemisphere), None)
        scale = 0 if backend is None else (backend.slow_clock if n.refractory_clock == "slow" else backend.fast_clock)
        period = 1.0 / chip.refractory_clock(scale) / tick
        rows.append(
            (
                n.tau_mem * max(1 + d[0], _SMALLEST_TAU_FACTOR),
                n.tau_syn_exc * max(1 + d[1], _SMALLEST_TAU_FACTOR),
                n.tau_syn_inh * max(1 + d[2], _SMALLEST_TAU_FACTOR),
                max(1 + d[3], 0.0),
                max(1 + d[4], 0.0),
                n.v_threshold + d[5],
                n.v_leak + d[6],
                n.v_reset + d[7],
                period,
                float(n.refractory_counter),
            )
        )
    arr = np.array(rows, np.float64).reshape(-1, 10)
    tau_m, tau_e, tau_i, g_e, g_i, v_th, v_leak, v_reset, periods, counter = arr.T
    gain = config.v_scale / config.weight_scale  # LSB of synaptic input per unit of 6-bit weight
    return {
        "a": tick / tau_m,
        "be": tick / tau_e,
        "bi": tick / tau_i,
        "theta": v_th - v_leak,
        "reset": v_reset - v_leak,
        "gain_exc": gain * g_e,
        "gain_inh": gain * g_i,
        "refractory": counter * periods,
        "clock_period": periods,
        "counter": counter,
        "budget": np.asarray(budgets, np.int64),
    }
