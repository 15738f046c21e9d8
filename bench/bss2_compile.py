"""Compile time of the bss2 pipeline against network size, up to a full chip (512 neuron circuits).

Two families, both sized by the number of neurons placed on the chip:

- ``feedforward``: 64 inputs -> hidden -> 32 outputs; inputs dense into hidden, every output reads 24
  random hidden neurons (a full chip cannot hold a dense hidden->output layer: the rows would not fit).
- ``recurrent``: 16 inputs dense into one population that is recurrently connected with in-degree 16.

Weights are signed (two rows per source), the pipeline is ``snncomp.pipeline("bss2")`` with the
PassManager's default re-verification after every pass. Each point is the median of ``--repeat`` runs.

    python bench/bss2_compile.py              # the table in docs/bss2.md
    python bench/bss2_compile.py --sizes 512 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import snncomp
from snncomp.ir import Edge, InputNode, LIFNode, Network
from snncomp.passes import PassManager

BSS2_PASSES = ("map-parameters", "split-sign", "quantize", "place", "route", "verify-config")


def feedforward(n: int, seed: int = 0) -> Network:
    """64 -> (n - 32) -> 32; outputs read 24 random hidden neurons each."""
    rng = np.random.default_rng(seed)
    hidden, out = n - 32, 32
    lif = {"tau_mem": 10e-3, "tau_syn": 5e-3, "max_spikes": 1}
    mask = np.zeros((hidden, out), bool)
    for j in range(out):
        mask[rng.choice(hidden, size=min(24, hidden), replace=False), j] = True
    return Network(
        name=f"ff{n}",
        nodes=(InputNode(name="x", size=64), LIFNode(name="h", size=hidden, **lif), LIFNode(name="o", size=out, **lif)),
        edges=(
            Edge(source="x", target="h", weight=rng.normal(0.3, 0.3, (64, hidden))),
            Edge(source="h", target="o", weight=rng.normal(0.2, 0.5, (hidden, out)), mask=mask),
        ),
    )


def recurrent(n: int, seed: int = 0) -> Network:
    """16 inputs -> n recurrent neurons, recurrent in-degree 16."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((n, n), bool)
    for j in range(n):
        mask[rng.choice(n, size=min(16, n), replace=False), j] = True
    return Network(
        name=f"rec{n}",
        nodes=(InputNode(name="x", size=16), LIFNode(name="r", size=n, tau_mem=20e-3, tau_syn=5e-3, t_refrac=2e-3)),
        edges=(
            Edge(source="x", target="r", weight=rng.normal(0.5, 0.3, (16, n))),
            Edge(source="r", target="r", weight=rng.normal(0.0, 0.2, (n, n)), mask=mask),
        ),
    )


def measure(net: Network, repeat: int) -> tuple[float, float, dict[str, float], int]:
    """Median wall time of the whole pipeline, of the bss2 passes, per-pass medians, and synapses."""
    pipe = str(snncomp.pipeline("bss2"))
    totals, bss2, per_pass = [], [], {}
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = PassManager(pipe).run(net)
        totals.append(time.perf_counter() - t0)
        bss2.append(sum(t.seconds + t.verify_seconds for t in result.timings if t.name in BSS2_PASSES))
        for t in result.timings:
            per_pass.setdefault(t.name, []).append(t.seconds)
    assert result is not None
    synapses = result.annotations["config_check"].synapses
    return (
        statistics.median(totals),
        statistics.median(bss2),
        {k: statistics.median(v) for k, v in per_pass.items()},
        synapses,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 128, 256, 384, 512])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    PassManager(str(snncomp.pipeline("bss2"))).run(feedforward(64))  # warm-up (imports)
    print("| family | neurons | synapses (hw) | pipeline [ms] | bss2 passes [ms] | place | route | verify-config |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for family, build in (("feedforward", feedforward), ("recurrent", recurrent)):
        for n in args.sizes:
            total, bss2, per, syn = measure(build(n), args.repeat)
            print(
                f"| {family} | {n} | {syn} | {total * 1e3:.0f} | {bss2 * 1e3:.0f} | {per['place'] * 1e3:.0f} | "
                f"{per['route'] * 1e3:.0f} | {per['verify-config'] * 1e3:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
