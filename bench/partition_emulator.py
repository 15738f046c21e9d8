"""The emulator on the last partition of the wide partitioned Yin-Yang network (stand-in inputs).

Run: ``python bench/partition_emulator.py --prepare`` once (compiles ``25 -> 1024 -> 3`` in 3
partitions on the ideal emulator, runs the first two on 64 test samples and saves the last partition
as a standalone network with its recorded stand-in spikes under ``--dir``), then
``python bench/partition_emulator.py`` (any number of times, also from another tree:
``PYTHONPATH=/path/to/other/tree python bench/partition_emulator.py`` compares engines on the same
configuration and spikes; alternate the two for a side-by-side A/B).

Prints the median wall time of ``--repeat`` forward passes (batch 64, after a warm-up call) on the ideal
and the realistic preset (uncalibrated: a calibration changes gains, not the cost), and the engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def prepare(out: Path) -> None:
    import jax

    import snncomp
    from snncomp import ir
    from snncomp.apps import yinyang
    from snncomp.apps.yinyang import YinYangConfig
    from snncomp.targets.bss2.mock import MockConfig

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from partitioned_yinyang import build

    c = YinYangConfig.chip_ready(seed=0, hidden=1024, n_train=256, n_val=64, n_test=64)
    net, _, _ = build(c, 1024, 1)
    exe = snncomp.compile(
        net, target="bss2-mock", t_max=c.t_max, max_partitions=3, max_circuits_per_neuron=8, mock=MockConfig.ideal()
    )
    batch = jax.tree.map(lambda a: np.asarray(a)[:64], yinyang.prepare_data(c)["test"][0])
    recs: list = []
    feed: dict = {}
    for i, (part, sub) in enumerate(zip(exe.parts, exe.plan.parts)):
        feed = {n.name: batch[n.name] for n in sub.nodes if n.kind == "input" and n.name in batch}
        for cut in exe.plan.cuts:
            if cut.target_part == i:
                feed[cut.name] = recs[cut.source_part].spikes[cut.name]
        recs.append(part.run(feed))
    out.mkdir(parents=True, exist_ok=True)
    ir.save(exe.plan.parts[-1], out / "part.json")
    arrays = {f"{k}.times": np.asarray(v.times) for k, v in feed.items()}
    arrays.update({f"{k}.neurons": np.asarray(v.neurons) for k, v in feed.items()})
    np.savez(out / "inputs.npz", **arrays)
    (out / "meta.json").write_text(json.dumps({"t_max": c.t_max}))
    print(f"prepared {out}: {exe.plan.text().splitlines()[-3]}; inputs", {k: v.shape for k, v in arrays.items()})


def measure(out: Path, repeat: int) -> None:
    import jax

    import snncomp
    from snncomp import ir
    from snncomp.targets.bss2.mock import MockConfig, compile_mock

    net = ir.load(out / "part.json")
    z = np.load(out / "inputs.npz")
    names = sorted({k.rsplit(".", 1)[0] for k in z.files})
    feed = {n: snncomp.Spikes(times=z[f"{n}.times"], neurons=z[f"{n}.neurons"]) for n in names}
    t_max = json.loads((out / "meta.json").read_text())["t_max"]
    row = {}
    for name, mock in (("ideal", MockConfig.ideal()), ("realistic", MockConfig.realistic())):
        exe = compile_mock(net, t_max=t_max, mock=mock, chip_seed=0)
        jax.block_until_ready(exe.run(feed))
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            jax.block_until_ready(exe.run(feed))
            times.append(time.perf_counter() - t0)
        engine = str(exe.report()).split("emulator:", 1)[-1].split(",", 1)[0].strip()
        row[name] = f"{1e3 * float(np.median(times)):.1f} ms per batch of 64 ({engine})"
    print(snncomp.__file__.rsplit("/snncomp/", 1)[0], row)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prepare", action="store_true", help="build and save the partition and its inputs")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/snncomp_partition_bench"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the initial weights saturate some synapses: the cost is the same
    if args.prepare:
        prepare(args.dir)
    else:
        measure(args.dir, args.repeat)


if __name__ == "__main__":
    main()
