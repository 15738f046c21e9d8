"""Yin-Yang with snncomp: declare, compile, train with EventProp, deploy on the BSS-2 emulator, fine-tune there.

Run: ``python examples/yinyang.py`` (about three minutes on two CPU cores). ``snncomp demo`` does the
same with more output; ``snncomp.yinyang`` holds the pieces used here.
"""

from __future__ import annotations

from dataclasses import replace

import snncomp
from snncomp import yinyang

# The network made for the chip: (x, y, 1-x, 1-y, bias) each on 5 input channels -> 120 LIF -> 3 LIF,
# each neuron spiking at most once; weights kept within one synapse's range, trained quantization-aware.
config = yinyang.YinYangConfig.chip_ready(hidden=120, epochs=60, seed=0)
net = yinyang.build_network(config)
print(snncomp.compile(net, target="jax", t_max=config.t_max).report())

# Compile for JAX, train with EventProp (validation every epoch), write metrics, params and plots.
result = yinyang.train(target="jax", config=config, out="runs/example")
print(f"JAX target: test accuracy {result.test_accuracy:.2%} after {len(result.records)} epochs")

try:
    # Calibrates the emulated chip's neurons from their spikes first (once; cached in ~/.cache/snncomp).
    mock = yinyang.compile_for(net, "bss2-mock", config, mock="realistic", log=print)
except snncomp.SnnCompError as exc:
    print(f"bss2-mock skipped: {exc}")
else:
    # The same weights on the emulated BrainScaleS-2 chip (fixed-pattern mismatch, noise, 6-bit weights).
    test = yinyang.prepare_data(config)["test"]
    print(mock.calibration)
    print(f"bss2-mock (realistic), JAX weights: {yinyang.evaluate_on(mock, result.params, test, config):.2%}")
    # Hardware in the loop: forward on the chip, EventProp backward on the recorded spikes.
    tuned = yinyang.train(target="bss2-mock", config=replace(config, epochs=2), params=result.params)
    print(f"bss2-mock (realistic), after 2 epochs in the loop: {tuned.test_accuracy:.2%}")
