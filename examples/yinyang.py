"""Yin-Yang with snncomp: declare, compile, train with EventProp, evaluate, deploy on the BSS-2 emulator.

Run: ``python examples/yinyang.py`` (about two minutes on two CPU cores). ``snncomp demo`` does the
same with more output; ``snncomp.yinyang`` holds the pieces used here.
"""

from __future__ import annotations

import snncomp
from snncomp import yinyang

config = yinyang.YinYangConfig(hidden=120, epochs=60, seed=0)

# 5 inputs (x, y, 1-x, 1-y, bias) -> 120 LIF -> 3 LIF, each neuron spikes at most once.
net = yinyang.build_network(config)
print(snncomp.compile(net, target="jax", t_max=config.t_max).report())

# Compile for JAX, train with EventProp (validation every epoch), write metrics, params and plots.
result = yinyang.train(target="jax", config=config, out="runs/example")
print(f"JAX target: test accuracy {result.test_accuracy:.2%} after {len(result.records)} epochs")

# The same trained weights on the emulated BrainScaleS-2 chip (realistic mismatch and noise).
try:
    mock = yinyang.compile_for(net, "bss2-mock", config, mock="realistic")
except snncomp.SnnCompError as exc:
    print(f"bss2-mock skipped: {exc}")
else:
    data = yinyang.prepare_data(config)
    acc = yinyang.evaluate_on(mock, result.params, data["test"], config)
    print(f"bss2-mock (realistic), JAX weights: test accuracy {acc:.2%}")
