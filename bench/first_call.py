"""First calls with and without the persistent compilation cache (issue 19, item 2).

Run: ``python bench/first_call.py`` (``--network demo|recurrent|all``, ``--rounds N``).

Each measurement is a fresh Python process (``--child``) timing: ``import snncomp``, ``compile``, the
first ``run`` (trace + XLA compile + run), a second ``run`` (steady state), the first ``jax.jit(jax.grad)``
call and a second one, and the first and second ``train.make_step`` step (what ``fit`` runs: its checks
leave the program as a returned code, without host callbacks). Per network and round: a *cold* process
with an empty cache directory, then a
*warm* one reusing that directory (what a second CLI call, test worker or notebook restart sees), and
one with the cache off (``SNNCOMP_COMPILATION_CACHE=0``), and a warm one with ``EQX_ON_ERROR=nan`` (the
gradient's program holds the in-program checks' host callbacks, and JAX never writes a program with
host callbacks to its cache; in equinox's ``nan`` mode the checks need none). Networks: the demo's chip-ready Yin-Yang
network (25 -> 120 -> 3, batch 64 of its test set) and ``bench/sim_throughput.py``'s recurrent
multi-spike network (100 -> 200 recurrent -> 10, 50 ms, batch 64).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _child(network: str) -> dict[str, float]:
    t0 = time.perf_counter()
    import snncomp

    t_import = time.perf_counter() - t0
    import jax
    import jax.numpy as jnp
    import numpy as np

    if network == "demo":
        from snncomp import yinyang

        cfg = yinyang.YinYangConfig.chip_ready()
        net, t_max, out = yinyang.build_network(cfg), cfg.t_max, "o"
        inputs = jax.tree.map(lambda a: np.asarray(a)[:64], yinyang.prepare_data(cfg)["test"][0])
    else:
        sys.path.insert(0, str(HERE))
        import sim_throughput as st

        net = st._recurrent_net(0)
        t_max, out = 50e-3, "out"
        rng = np.random.default_rng(0)
        times = np.sort(rng.uniform(0, t_max, (64, 500)), axis=-1).astype(np.float32)
        neurons = rng.integers(0, 100, (64, 500)).astype(np.int32)
        inputs = {"x": snncomp.Spikes(times=times, neurons=neurons)}
    options = {"spikes_per_neuron": 10} if network == "recurrent" else {}
    t1 = time.perf_counter()
    exe = snncomp.compile(net, t_max=t_max, **options)
    t_compile = time.perf_counter() - t1

    def run() -> None:
        jax.block_until_ready(exe.run(inputs).spikes[out].times)

    def loss(params: Any) -> Any:
        t = exe.apply(params, inputs).spikes[out].times
        return jnp.mean(jnp.where(jnp.isfinite(t), t, t_max) ** 2)

    grad = jax.jit(jax.grad(loss))
    from snncomp.train import make_step

    train_step = make_step(exe, lambda rec, _y: loss_of(rec))
    state = train_step.init(exe.params)
    targets = jnp.zeros(64)

    def loss_of(rec: Any) -> Any:
        t = rec.spikes[out].times
        return jnp.mean(jnp.where(jnp.isfinite(t), t, t_max) ** 2)

    def one_step() -> None:
        jax.block_until_ready(train_step(exe.params, state, inputs, targets)[2])

    res = {"import": t_import, "compile": t_compile}
    steps = (("run", run), ("grad", lambda: jax.block_until_ready(grad(exe.params))), ("step", one_step))
    for name, fn in steps:
        t = time.perf_counter()
        fn()
        res[f"first {name}"] = time.perf_counter() - t
        t = time.perf_counter()
        fn()
        res[f"steady {name}"] = time.perf_counter() - t
    return res


def _spawn(network: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", network],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("demo", "recurrent", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return 0
    networks = ("demo", "recurrent") if args.network == "all" else (args.network,)
    keys = ("import", "compile", "first run", "steady run", "first grad", "steady grad", "first step", "steady step")
    for network in networks:
        rows: dict[str, list[dict[str, float]]] = {"cold": [], "warm": [], "cache off": [], "warm, nan": []}
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as cache:
                rows["cold"].append(_spawn(network, {"SNNCOMP_COMPILATION_CACHE": cache}))
                rows["warm"].append(_spawn(network, {"SNNCOMP_COMPILATION_CACHE": cache}))
            rows["cache off"].append(_spawn(network, {"SNNCOMP_COMPILATION_CACHE": "0"}))
            # Programs with in-program checks hold host callbacks, which JAX never caches on disk;
            # with equinox's EQX_ON_ERROR=nan the checks need no callback.
            with tempfile.TemporaryDirectory() as cache:
                env = {"SNNCOMP_COMPILATION_CACHE": cache, "EQX_ON_ERROR": "nan"}
                _spawn(network, env)
                rows["warm, nan"].append(_spawn(network, env))
        print(f"\n{network}: seconds, median [range] over {args.rounds} rounds, each a new process")
        print(f"  {'':10s}" + "".join(f"{k:>22s}" for k in keys))
        for label, runs in rows.items():
            cells = []
            for k in keys:
                vals = [r[k] for r in runs]
                cells.append(f"{statistics.median(vals):7.3f} [{min(vals):5.2f}-{max(vals):5.2f}]")
            print(f"  {label:10s}" + "".join(f"{c:>22s}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
