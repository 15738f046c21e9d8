"""Forward throughput of the BrainScaleS-2 emulator (target ``bss2-mock``) against the jax target (CPU).

Run: ``python bench/mock_throughput.py`` (``--quick`` for fewer repeats).

The Yin-Yang-sized network of ``bench/sim_throughput.py`` (5 -> 120 -> 3 single-spike LIF, the same
weights, a 20 ms model window = 20 us on the chip), batch 64 and 1024, run on the emulator with
``MockConfig.ideal()`` and ``MockConfig.realistic()`` and on the jax target (layer-parallel schedule).
Timings are the median of ``--repeat`` calls of the whole ``Executable.run`` (host validation included)
with ``jax.block_until_ready``, after a warm-up call whose time (compilation) is printed separately.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _yinyang_net(seed: int = 0) -> Any:
    import snncomp

    net = snncomp.Network("yinyang")
    x = net.input("x", 5)
    h = net.lif("hidden", 120, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("out", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(1.5, 0.8, seed=seed))
    net.connect(h, o, init=snncomp.init.normal(0.2, 0.4, seed=seed + 1))
    return net.build()


def _inputs(batch: int, seed: int = 1) -> Any:
    import snncomp

    xy = np.random.default_rng(seed).uniform(0.0, 1.0, (batch, 2))
    feats = np.concatenate([xy, 1.0 - xy, np.zeros((batch, 1))], axis=1)
    t = feats * 10e-3
    n = np.repeat(np.arange(5)[None, :], batch, axis=0)
    return {"x": snncomp.Spikes.from_lists(list(t), list(n))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else args.repeat

    import jax

    import snncomp
    from snncomp.targets.bss2.mock import MockConfig, compile_mock

    platform = jax.devices()[0].platform
    print(f"snncomp {snncomp.__version__}, jax {jax.__version__}, {platform}, {os.cpu_count()} CPU cores")
    net = _yinyang_net()
    t0 = time.perf_counter()
    jax_exe = snncomp.compile(net, t_max=20e-3)
    jax_compile = time.perf_counter() - t0
    rows = []
    for batch in (64, 1024):
        inputs = _inputs(batch)
        t0 = time.perf_counter()
        jax.block_until_ready(jax_exe.run(inputs))
        first = time.perf_counter() - t0
        ref = _median_time(lambda exe=jax_exe, x=inputs: jax.block_until_ready(exe.run(x)), repeat)
        rows.append(("jax target", batch, ref, first, ref))
        for name, mock in (("bss2-mock ideal", MockConfig.ideal()), ("bss2-mock realistic", MockConfig.realistic())):
            t0 = time.perf_counter()
            exe = compile_mock(net, t_max=20e-3, mock=mock)
            place = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, health = exe.run_with_health(inputs)
            first = time.perf_counter() - t0
            sec = _median_time(lambda exe=exe, x=inputs: jax.block_until_ready(exe.run(x)), repeat)
            rows.append((f"{name} (placed in {place * 1e3:.0f} ms)", batch, sec, first, ref))
            print(f"  {name}, batch {batch}: health {health.text()}")
    print(f"\njax target compiled in {jax_compile * 1e3:.0f} ms")
    print(f"{'target':40s} {'batch':>6s} {'ms/batch':>10s} {'samples/s':>10s} {'1st call s':>10s} {'vs jax':>8s}")
    for name, batch, sec, first, ref in rows:
        print(f"{name:40s} {batch:6d} {sec * 1e3:10.1f} {batch / sec:10.0f} {first:10.2f} {sec / ref:7.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
