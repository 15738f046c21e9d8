"""Yin-Yang beyond one chip: a network larger than one BrainScaleS-2 chip, partitioned on the emulator.

Trains ``25 -> hidden x layers -> 3`` on the ``jax`` target (the app's loss, data, optimizer and
quantization-aware training), deploys the mean of the last epochs' weights on the calibrated realistic
``bss2-mock`` emulator cut into partitions (sequential mode: one chip runs them one after another),
fine-tunes in the loop through the ``PartitionedExecutable`` (gradients chained across the
partitions), and prints a table: accuracies per stage, partitions, and per partition the emulator
engine and its wall time per sample at batch 64.

    python examples/partitioned_yinyang.py --hidden 256 --layers 2 --epochs 40 --seed 0
    python examples/partitioned_yinyang.py --hidden 1000 --layers 1 --max-circuits-per-neuron 8 --seed 0
    python examples/partitioned_yinyang.py --quick      # smoke version: 25 -> 40 -> 3 on a 32-circuit chip

Results: ``docs/results.md``, "Beyond one chip: partitioned Yin-Yang".
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import snncomp
from snncomp.apps import yinyang
from snncomp.apps.yinyang import Readout, YinYangConfig

BATCH_TIMING = 64  # batch size of the per-partition forward-pass timing


def build(config: YinYangConfig, hidden: int, layers: int) -> tuple[snncomp.Network, Readout, str]:
    """``25 -> hidden (x layers) -> 3``, its :class:`Readout` and the input edge (whose steps Adam divides)."""
    c = config
    net = snncomp.Network("yinyang_deep" if layers > 1 else "yinyang_wide")
    x = net.input("x", c.n_inputs)
    pops = [net.lif(f"h{i + 1}", hidden, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1) for i in range(layers)]
    o = net.lif("o", 3, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1)
    # The first layer as the app builds it (equal copies of each repeated input); later layers with the
    # app's output-layer init, its mean scaled down with the fan-in so that the summed drive stays the one
    # the app's 120-neuron hidden layer gives its output neurons.
    r = c.input_repeat
    w_in = snncomp.init.normal(1.0, 1.0, seed=2 * c.seed + 1)((yinyang.N_INPUTS, hidden))
    edges = [net.connect(x, pops[0], weight=np.repeat(w_in / r, r, axis=0))]
    for i, (a, b) in enumerate(zip(pops, [*pops[1:], o])):
        mean = 0.4 * min(1.0, 120 / hidden)
        edges.append(net.connect(a, b, init=snncomp.init.normal(mean, 0.3, seed=2 * c.seed + 2 + i)))
    readout = Readout(hidden=pops[-1].name, output="o", input_edge=edges[-2], output_edge=edges[-1])
    return net, readout, edges[0]


class Evaluator:
    """Test/validation accuracy of an executable in fixed chunks (one compiled program per executable)."""

    chunk = 256

    def __init__(self, exe: Any, config: YinYangConfig, readout: Readout):
        import jax

        from snncomp import losses

        model = yinyang._WithParams(exe, yinyang._software_quantization(exe, config))

        def correct(params: Any, inputs: Any, labels: Any, key: Any) -> Any:
            rec, _ = model.apply(params, inputs, key)
            t = rec.spikes[readout.output].to_first_spike_times(yinyang.N_CLASSES)
            return losses.first_spike_class(t) == labels

        self._correct = jax.jit(correct)
        self._key = jax.random.PRNGKey(config.seed + 0x5EED)
        self._calls = 0

    def __call__(self, params: Any, data: tuple[dict[str, Any], np.ndarray], trials: int = 1) -> float:
        """Mean accuracy over ``trials`` runs, each with new trial-to-trial noise (on the emulator)."""
        import jax

        inputs, labels = data
        n = len(labels)
        runs = []
        for _ in range(trials):
            key = jax.random.fold_in(self._key, self._calls)
            self._calls += 1
            hits = []
            for i, start in enumerate(range(0, n, self.chunk)):
                idx = np.arange(start, start + self.chunk)
                idx = np.where(idx < n, idx, start)  # pad with a real sample, cut off below
                chunk = jax.tree.map(lambda a, idx=idx: np.asarray(a)[idx], (inputs, np.asarray(labels)))
                hits.append(np.asarray(self._correct(params, *chunk, jax.random.fold_in(key, i))))
            runs.append(float(np.mean(np.concatenate(hits)[:n])))
        return float(np.mean(runs))


def train_on(
    exe: Any,
    config: YinYangConfig,
    readout: Readout,
    input_edge: str,
    data: dict[str, Any],
    epochs: int,
    learning_rate: float,
    params: Any = None,
    say: Any = print,
) -> tuple[Any, Any, list[dict[str, float]]]:
    """``snncomp.train.fit`` with the app's loss, optimizer and weight clipping.

    Returns the last epoch's params, the mean of the last ``average_epochs`` epochs' params (at most
    half the run; ``None`` for runs of one epoch) and the per-epoch records.
    """
    import jax
    import optax

    from snncomp.train import clip_weights, fit

    steps = config.n_train // config.batch_size
    schedule = optax.cosine_decay_schedule(learning_rate, epochs * steps, alpha=0.05)
    evaluate = Evaluator(exe, config, readout)
    n_average = min(config.average_epochs, epochs // 2)
    recent: list[Any] = []

    def on_epoch(record: dict[str, float], params: Any) -> bool:
        record["val_accuracy"] = evaluate(params, data["val"])
        if n_average > 1:
            recent.append(jax.tree.map(np.asarray, params))
            del recent[:-n_average]
        say(
            f"  epoch {int(record['epoch']):3d}  loss {record['train_loss']:.4f}  val {record['val_accuracy']:.3f}  "
            f"{record['samples_per_s']:,.0f} samples/s"
        )
        return False

    history = fit(
        yinyang._WithParams(exe, yinyang._software_quantization(exe, config)),
        yinyang.loss_fn(config, readout),
        data["train"],
        optimizer=yinyang.optimizer(config, schedule, input_edge),
        epochs=epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        accuracy=partial(yinyang.accuracy_fn, readout=readout),
        callbacks=[on_epoch],
        progress=False,
        params=exe.params if params is None else params,
        project=clip_weights(config.weight_bound),
    )
    averaged = jax.tree.map(lambda *ws: np.mean(np.stack(ws), axis=0), *recent) if len(recent) > 1 else None
    return history.params, averaged, history.records


def compile_chip(
    net: snncomp.Network, config: YinYangConfig, options: dict[str, Any], chips: int, calibrate: bool, say: Any
) -> Any:
    """The partitioned ``bss2-mock`` executable, each emulated chip calibrated on the circuits it uses."""
    from snncomp.targets.bss2.errors import WeightSaturationWarning
    from snncomp.targets.bss2.mock import cached_calibration, circuits_of

    with warnings.catch_warnings():
        # The network carries its initial weights, some beyond a synapse's range; what runs are the
        # trained, clipped params given to run/apply, quantized again there.
        warnings.simplefilter("ignore", WeightSaturationWarning)
        exe = snncomp.compile(net, target="bss2-mock", t_max=config.t_max, chips=chips, **options)
    preset = options["mock"]
    if not (calibrate and preset.has_fpn):
        return exe
    chip = {"chip": options["chip"]} if "chip" in options else {}
    parts = getattr(exe, "parts", [exe])

    def calibration(seed: int, configs: list[Any]) -> Any:
        circuits = sorted({c for cfg in configs for c in circuits_of(cfg)})
        return cached_calibration(
            preset, seed, log=say, tau_mem=config.tau_mem, tau_syn=config.tau_syn, circuits=circuits, **chip
        )

    if chips > 1:
        # one chip per partition, each with its own fixed-pattern noise and so its own calibration
        cal: Any = [calibration(i, [p.lowered]) for i, p in enumerate(parts)]
    else:
        # sequential mode: every partition runs on the one chip, calibrated on all circuits they use
        cal = calibration(0, [p.lowered for p in parts])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightSaturationWarning)
        return snncomp.compile(net, target="bss2-mock", t_max=config.t_max, chips=chips, calibration=cal, **options)


def engine_of(part: Any) -> str:
    """The emulator engine a partition's last run used, read from its report."""
    line = next((ln for ln in str(part.report()).splitlines() if "emulator:" in ln), "")
    return line.split("emulator:", 1)[-1].split(",", 1)[0].strip() or "unknown"


def time_partitions(exe: Any, params: Any, inputs: dict[str, Any], repeats: int = 5) -> list[dict[str, Any]]:
    """Per partition: engine and median wall time per sample of its forward pass at batch ``BATCH_TIMING``.

    Each partition's ``run_with_health`` is timed inside the partitioned run (so it gets the spikes the
    earlier partitions recorded), after one warm-up run that compiles the programs.
    """
    import jax

    parts = getattr(exe, "parts", [exe])
    seconds: list[list[float]] = [[] for _ in parts]

    def timed(i: int, run: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = jax.block_until_ready(run(*args, **kwargs))
            seconds[i].append(time.perf_counter() - start)
            return out

        return wrapper

    for i, p in enumerate(parts):
        p.run_with_health = timed(i, p.run_with_health)  # an instance attribute, removed below
    try:
        for _ in range(repeats + 1):
            exe.run_with_health(inputs, params)
    finally:
        for p in parts:
            del p.run_with_health
    n = len(jax.tree.leaves(inputs)[0])
    return [
        {"partition": i, "engine": engine_of(p), "us_per_sample": 1e6 * float(np.median(s[1:])) / n}
        for i, (p, s) in enumerate(zip(parts, seconds))
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the demonstration; returns (and prints) the results."""
    import jax

    from snncomp.targets.bss2 import ChipSpec
    from snncomp.targets.bss2.mock import MockConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, default=256, help="neurons per hidden layer")
    ap.add_argument("--layers", type=int, default=2, help="hidden layers")
    ap.add_argument("--epochs", type=int, default=40, help="software training epochs on the jax target")
    ap.add_argument("--loop-epochs", type=int, default=1, help="hardware-in-the-loop epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-partitions", type=int, default=4)
    ap.add_argument(
        "--max-circuits-per-neuron",
        type=int,
        help="circuits one neuron may span (place's option, default 4: fan-in up to 1024 synapse slots)",
    )
    ap.add_argument(
        "--mock", choices=["realistic", "ideal"], help="emulator preset (default realistic; --quick: ideal)"
    )
    ap.add_argument("--no-calibration", action="store_true")
    ap.add_argument("--multi-chip", action="store_true", help="also measure one emulated chip per partition")
    ap.add_argument("--quick", action="store_true", help="smoke version: small network on a 32-circuit chip")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)

    options: dict[str, Any] = {"max_partitions": args.max_partitions}
    if args.max_circuits_per_neuron is not None:
        options["max_circuits_per_neuron"] = args.max_circuits_per_neuron
    overrides: dict[str, Any] = {"seed": args.seed, "hidden": args.hidden, "epochs": args.epochs}
    if args.quick:
        # On a 32-circuit chip 25 -> 40 -> 3 needs 2 partitions and runs in seconds; the ideal preset
        # needs no calibration (the smoke test checks the machinery, not the chip's accuracy).
        options["chip"] = ChipSpec(columns=16, event_outputs=8, columns_per_event_output=2)
        args.hidden, args.layers = 40, 1
        args.mock = args.mock or "ideal"
        overrides.update(hidden=40, epochs=min(args.epochs, 8), n_train=2048, n_val=256, n_test=500, test_trials=1)
    config = YinYangConfig.chip_ready(**overrides)
    options["mock"] = MockConfig.ideal() if args.mock == "ideal" else MockConfig.realistic()
    say = print
    data = yinyang.prepare_data(config)
    net, readout, input_edge = build(config, args.hidden, args.layers)
    shape = " -> ".join(str(n) for n in [config.n_inputs, *[args.hidden] * args.layers, 3])
    say(f"network {shape}, seed {args.seed}, {config.epochs} epochs on jax, {args.loop_epochs} in the loop")
    out: dict[str, Any] = {"network": shape, "seed": args.seed, "epochs": config.epochs}

    t0 = time.perf_counter()
    jexe = snncomp.compile(net, target="jax", t_max=config.t_max)
    last, averaged, _ = train_on(jexe, config, readout, input_edge, data, config.epochs, config.learning_rate)
    deployed = averaged if averaged is not None else last
    jax_eval = Evaluator(jexe, config, readout)
    out["jax_test"] = jax_eval(deployed, data["test"])
    out["jax_test_last_epoch"] = jax_eval(last, data["test"])
    out["jax_seconds"] = time.perf_counter() - t0
    say(f"jax: test {out['jax_test']:.4f} (mean of the last epochs), last epoch {out['jax_test_last_epoch']:.4f}")

    t0 = time.perf_counter()
    mexe = compile_chip(net, config, options, 1, not args.no_calibration, say)
    out["partitions"] = len(getattr(mexe, "parts", [mexe]))
    out["executable"] = type(mexe).__name__
    out["compile_seconds"] = time.perf_counter() - t0
    say(f"bss2-mock: {mexe!r} (compiled and calibrated in {out['compile_seconds']:.0f} s)")
    trials = config.test_trials if options["mock"].has_trial_noise else 1
    chip_eval = Evaluator(mexe, config, readout)
    out["deployed_test"] = chip_eval(deployed, data["test"], trials)
    say(f"deployed (sequential, {out['partitions']} partitions): test {out['deployed_test']:.4f}")
    batch = jax.tree.map(lambda a: np.asarray(a)[:BATCH_TIMING], data["test"][0])
    out["timing"] = time_partitions(mexe, deployed, batch)
    for t in out["timing"]:
        say(
            f"  partition {t['partition']}: {t['engine']}, "
            f"{t['us_per_sample']:.0f} us per sample (batch {BATCH_TIMING})"
        )
    out["cuts"] = [ln.strip() for ln in str(mexe.report()).splitlines() if "partition" in ln and "->" in ln]

    t0 = time.perf_counter()
    lr = config.finetune_learning_rate
    loop_config = replace(config, epochs=args.loop_epochs)
    tuned, _, loop_records = train_on(
        mexe, loop_config, readout, input_edge, data, args.loop_epochs, lr, params=deployed
    )
    out["loop_test"] = chip_eval(tuned, data["test"], trials)
    out["loop_seconds"] = time.perf_counter() - t0
    out["loop_samples_per_s"] = float(np.median([r["samples_per_s"] for r in loop_records]))
    say(f"after {args.loop_epochs} epoch(s) in the loop: test {out['loop_test']:.4f} ({out['loop_seconds']:.0f} s)")

    if args.multi_chip and out["partitions"] > 1:
        n = out["partitions"]
        multi = compile_chip(net, config, options, n, not args.no_calibration, say)
        multi_eval = Evaluator(multi, config, readout)
        out["multi_chip_deployed_test"] = multi_eval(deployed, data["test"], trials)
        out["multi_chip_loop_test"] = multi_eval(tuned, data["test"], trials)
        # The inter-chip latency delays the cut spikes but not the spikes a partition makes itself: where a
        # neuron reads both (one hidden layer split over the chips) the two arrive skewed. Separated here
        # from the chips' own calibrations (latency 0), and fine-tuned in the loop on the chips themselves.
        no_latency = compile_chip(net, config, {**options, "inter_chip_latency": 0.0}, n, not args.no_calibration, say)
        out["multi_chip_no_latency_deployed_test"] = Evaluator(no_latency, config, readout)(
            deployed, data["test"], trials
        )
        t0 = time.perf_counter()
        tuned_multi, _, _ = train_on(
            multi, loop_config, readout, input_edge, data, args.loop_epochs, lr, params=deployed
        )
        out["multi_chip_own_loop_test"] = multi_eval(tuned_multi, data["test"], trials)
        out["multi_chip_loop_seconds"] = time.perf_counter() - t0
        say(
            f"multi-chip: deployed {out['multi_chip_deployed_test']:.4f} "
            f"(latency 0: {out['multi_chip_no_latency_deployed_test']:.4f}), "
            f"sequential loop's weights {out['multi_chip_loop_test']:.4f}, "
            f"after {args.loop_epochs} epoch(s) in the loop on the chips {out['multi_chip_own_loop_test']:.4f}"
        )

    print_table(out, trials)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return out


def print_table(out: dict[str, Any], trials: int) -> None:
    """The results as a Markdown table row (accuracies in %, test set, emulator: mean of ``trials``)."""
    timing = "; ".join(f"{t['partition']}: {t['us_per_sample']:.0f} us, {t['engine']}" for t in out["timing"])

    def pct(key: str) -> str:
        return "-" if key not in out else f"{100 * out[key]:.1f}"

    print()
    print(
        "| network | seed | jax epochs | jax % | deployed % | after loop % | multi-chip deployed % "
        "| (latency 0) | multi-chip after its loop % | partitions | per partition: us/sample (batch 64), engine |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {out['network']} | {out['seed']} | {out['epochs']} | {pct('jax_test')} | {pct('deployed_test')} | "
        f"{pct('loop_test')} | {pct('multi_chip_deployed_test')} | {pct('multi_chip_no_latency_deployed_test')} | "
        f"{pct('multi_chip_own_loop_test')} | {out['partitions']} | {timing} |"
    )
    print(f"(emulator accuracies: mean of {trials} trial(s) on the test set)")


if __name__ == "__main__":
    main()
