"""Throughput of the BrainScaleS-2 emulator (target ``bss2-mock``) against the jax target (CPU), in one run.

Run: ``python bench/mock_throughput.py`` (``--quick`` for fewer repeats, ``--no-general`` to skip the
general engine, ``--batch N``).

The network is the chip-ready Yin-Yang network (``snncomp.yinyang.build_network(YinYangConfig.chip_ready())``:
25 -> 120 -> 3 single-spike LIF, each input on 5 channels, a 30 ms model window = 30 us on the chip), the
inputs the first ``--batch`` (64) training samples of its data set. Measured, interleaved call by call
so that the machine's load affects all alike:

- **forward**: the whole ``Executable.run`` (host validation included) with ``jax.block_until_ready``,
  on the jax target (layer-parallel schedule) and on ``bss2-mock`` with ``MockConfig.realistic()``
  (layer-parallel engine, the default for this network) and ``MockConfig.ideal()``; with
  ``--general`` (default on) also the general engine (``engine="general"``), the emulator before the
  layer-parallel engine existed;
- **training step**: one step as ``snncomp.train.fit`` takes it -- ``jax.jit`` of ``jax.value_and_grad``
  of the Yin-Yang loss through ``exe.apply(params, inputs, key=...)`` plus the optax update and the
  weight clip -- on ``bss2-mock`` realistic (hardware in the loop: emulator forward, EventProp backward
  on the recorded spikes) and on the jax target (EventProp, quantization-aware as ``snncomp.yinyang``
  trains chip-ready weights in software).

Each figure is the median of ``--repeat`` calls after a warm-up call (whose time, mostly compilation,
is printed separately). The emulator here is uncalibrated (a gain calibration changes per-circuit gains,
not the cost).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--batch", type=int, default=64, help="samples per batch")
    parser.add_argument("--no-general", action="store_true", help="skip the general engine (slow)")
    args = parser.parse_args(argv)
    repeat = 7 if args.quick else args.repeat

    import warnings

    import jax
    import optax

    import snncomp
    from snncomp import yinyang
    from snncomp.targets.bss2 import WeightSaturationWarning
    from snncomp.targets.bss2.mock import MockConfig, compile_mock
    from snncomp.train import clip_weights

    warnings.simplefilter("ignore", WeightSaturationWarning)  # the initial weights exceed a synapse's range
    platform = jax.devices()[0].platform
    print(f"snncomp {snncomp.__version__}, jax {jax.__version__}, {platform}, {os.cpu_count()} CPU cores")
    cfg = yinyang.YinYangConfig.chip_ready(calibrate=False)
    net = yinyang.build_network(cfg).build()
    inputs_all, labels_all = yinyang.prepare_data(cfg)["train"]
    x = inputs_all["x"]
    b = args.batch
    inputs = {"x": snncomp.Spikes(times=np.asarray(x.times)[:b], neurons=np.asarray(x.neurons)[:b])}
    labels = np.asarray(labels_all)[:b]
    print(f"network: {' -> '.join(str(n.size) for n in net.nodes)}, t_max {cfg.t_max * 1e3:g} ms, batch {b}")

    jax_exe = snncomp.compile(net, target="jax", t_max=cfg.t_max)
    mocks: dict[str, Any] = {
        "bss2-mock realistic": compile_mock(net, t_max=cfg.t_max, mock=MockConfig.realistic()),
        "bss2-mock ideal": compile_mock(net, t_max=cfg.t_max, mock=MockConfig.ideal()),
    }
    if not args.no_general:
        mocks["bss2-mock realistic, general engine"] = compile_mock(
            net, t_max=cfg.t_max, mock=MockConfig.realistic(), engine="general"
        )

    def step_fn(exe: Any, quantize: float | None) -> tuple[Any, Any]:
        """``snncomp.train.fit``'s step for ``exe`` (loss, optimizer and projection of the Yin-Yang training)."""
        model = yinyang._WithParams(exe, quantize)
        loss = yinyang.loss_fn(cfg)
        opt = yinyang.optimizer(cfg, cfg.finetune_learning_rate)
        project = clip_weights(cfg.weight_bound)

        def loss_of(p: Any, xs: Any, ys: Any, key: Any) -> Any:
            out = model.apply(p, xs, key=key) if model.keyed else model.apply(p, xs)
            return loss(out, ys)

        @jax.jit
        def step(p: Any, s: Any, xs: Any, ys: Any, key: Any) -> tuple[Any, Any, Any]:
            value, grads = jax.value_and_grad(loss_of)(p, xs, ys, key)
            updates, s = opt.update(grads, s, p)
            return project(optax.apply_updates(p, updates)), s, value

        params = exe.params
        state = opt.init(params)
        key = jax.random.PRNGKey(0)
        return (lambda: jax.block_until_ready(step(params, state, inputs, labels, key))), step

    cases: dict[str, Any] = {"jax target": lambda: jax.block_until_ready(jax_exe.run(inputs))}
    for name, exe in mocks.items():
        cases[name] = lambda exe=exe: jax.block_until_ready(exe.run(inputs))
    train_cases: dict[str, Any] = {"jax target": step_fn(jax_exe, cfg.weight_scale)[0]}
    for name, exe in mocks.items():
        if name != "bss2-mock ideal":
            train_cases[name] = step_fn(exe, None)[0]

    first: dict[tuple[str, str], float] = {}
    for kind, group in (("forward", cases), ("train", train_cases)):
        for name, fn in group.items():
            first[(kind, name)] = _timed(fn)
    for name, exe in mocks.items():
        _, health = exe.run_with_health(inputs)
        print(f"  {name}: {exe.report().schedule}")
        print(f"    health: {health.text()}")

    times: dict[tuple[str, str], list[float]] = {k: [] for k in first}
    slow = {k for k in first if "general" in k[1]}
    for r in range(repeat):
        for key in first:
            if key in slow and r >= max(3, repeat // 5):
                continue  # the general engine is ~100x slower: a few calls suffice
            fn = (cases if key[0] == "forward" else train_cases)[key[1]]
            times[key].append(_timed(fn))

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'':44s} {'ms/batch':>9s} {'samples/s':>10s} {'1st call s':>10s} {'vs jax':>8s}")
    for kind, title in (("forward", "forward (Executable.run)"), ("train", "training step (value_and_grad + Adam)")):
        print(title)
        ref = med[(kind, "jax target")]
        for (k, name), sec in med.items():
            if k != kind:
                continue
            print(f"  {name:42s} {sec * 1e3:9.2f} {b / sec:10.0f} {first[(k, name)]:10.2f} {sec / ref:7.1f}x")
    fwd = med[("forward", "bss2-mock realistic")]
    hil = med[("train", "bss2-mock realistic")]
    print(
        f"\nbss2-mock realistic, batch {b}: forward {b / fwd:,.0f} samples/s "
        f"({fwd / med[('forward', 'jax target')]:.1f}x the jax target's time), hardware-in-the-loop training "
        f"step {b / hil:,.0f} samples/s ({hil / med[('train', 'jax target')]:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
