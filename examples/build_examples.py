"""Regenerate the example network files in this folder with the DSL.

Run: ``python examples/build_examples.py``. The JSON files are committed so
that the CLI examples in the README work without running Python first.
"""

from __future__ import annotations

from pathlib import Path

import snncomp

HERE = Path(__file__).parent


def yinyang(seed: int = 0) -> snncomp.ir.Network:
    """The Yin-Yang classifier: 5 inputs (x, y, 1-x, 1-y, bias) -> 120 LIF -> 3 LIF, first-spike coded."""
    net = snncomp.Network("yinyang", metadata={"task": "yin-yang classification"})
    x = net.input("x", 5)
    h = net.lif("hidden", 120, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("out", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(1.5, 0.8, seed=seed))
    net.connect(h, o, init=snncomp.init.normal(0.2, 0.4, seed=seed + 1))
    return net.build()


def recurrent(seed: int = 0) -> snncomp.ir.Network:
    """A small recurrent network: 20 inputs -> 50 LIF with sparse recurrence -> 4 LI readouts."""
    import numpy as np

    net = snncomp.Network("recurrent")
    x = net.input("x", 20)
    r = net.lif("rec", 50, tau_mem=20e-3, tau_syn=5e-3, t_refrac=2e-3, max_spikes=8)
    o = net.li("readout", 4, tau_mem=20e-3, tau_syn=5e-3)
    net.connect(x, r, init=snncomp.init.normal(0.3, 0.3, seed=seed))
    mask = np.random.default_rng(seed).random((50, 50)) < 0.1
    net.connect(r, r, init=snncomp.init.normal(0.0, 0.2, seed=seed + 1), mask=mask, delay=1e-3)
    net.connect(r, o, init=snncomp.init.normal(0.0, 0.3, seed=seed + 2))
    return net.build()


if __name__ == "__main__":
    for fn in (yinyang, recurrent):
        net = fn()
        snncomp.ir.save(net, HERE / f"{net.name}.json")
        print(f"wrote {HERE / (net.name + '.json')}")
