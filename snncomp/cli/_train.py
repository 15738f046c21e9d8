"""``snncomp train yinyang`` and ``snncomp demo``: the Yin-Yang task end to end from the command line."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from ._types import non_negative_int, positive_int, positive_number

__all__ = ["add_commands"]


_positive = positive_int
_non_negative = non_negative_int
_learning_rate = positive_number("a learning rate (a finite number > 0)")


def _cmd_train(args: argparse.Namespace) -> int:
    from ..yinyang import YinYangConfig, train

    on_chip = args.target == "bss2-mock"
    epochs = args.epochs if args.epochs is not None else (10 if on_chip else 100)
    common = {"hidden": args.hidden, "epochs": epochs, "seed": args.seed}
    if on_chip or args.chip_ready:
        config = YinYangConfig.chip_ready(**common)
        if args.pretrain_epochs is not None:
            config = replace(config, pretrain_epochs=args.pretrain_epochs)
    else:
        config = YinYangConfig(**common)
    if args.learning_rate is not None:
        config = replace(config, learning_rate=args.learning_rate)
    if args.finetune_learning_rate is not None:
        config = replace(config, finetune_learning_rate=args.finetune_learning_rate)
    if args.no_calibration:
        config = replace(config, calibrate=False)
    if args.average_epochs is not None:
        config = replace(config, average_epochs=args.average_epochs)
    if args.test_trials is not None:
        config = replace(config, test_trials=args.test_trials)
    result = train(target=args.target, config=config, out=Path(args.out), progress=not args.no_progress, mock=args.mock)
    if result.pretrain is not None:
        print(
            f"software pretraining: jax test accuracy {result.pretrain['jax_test_accuracy']:.4f}; "
            f"those weights on bss2-mock ({args.mock}) {result.pretrain['deployed_test_accuracy']:.4f}"
        )
    print(
        f"yinyang on {result.target}: test accuracy {result.test_accuracy:.4f} "
        f"({result.selected}, chosen on validation), {result.wall_seconds:.1f} s; wrote {args.out}/"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..yinyang import YinYangConfig, build_network, compile_for, evaluate_on, health_on, prepare_data, train

    t0 = time.perf_counter()
    if args.quick:
        # A reduced budget for tests: less data, a smaller hidden layer, few epochs.
        config = YinYangConfig.chip_ready(hidden=40, epochs=10, n_train=2048, n_val=256, n_test=256, learning_rate=3e-3)
    else:
        config = YinYangConfig.chip_ready(hidden=120, epochs=args.epochs)
    out = Path(args.out)
    net = build_network(config)
    print(
        f"== network: yinyang {config.n_inputs} -> {config.hidden} -> 3 (LIF, one spike per neuron, "
        f"t_max {config.t_max} s; each input on {config.input_repeat} channels for the chip's weight range)"
    )
    exe = compile_for(net, "jax", config)
    print("== lowered IR (target jax)")
    print(exe.report())

    mock_exe = None
    try:
        mock_exe = compile_for(net, "bss2-mock", config, mock="realistic", log=print)
    except Exception as exc:  # the emulator is optional: say why, keep the software result
        print(f"== bss2-mock: skipped ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if mock_exe is not None:
        print("== lowered for BrainScaleS-2 (target bss2-mock, realistic preset)")
        print(mock_exe.report())

    print(f"== training on jax ({config.epochs} epochs, {config.n_train} samples, quantization-aware)")
    result = train(target="jax", config=config, out=out, progress=True)
    rows = [("jax", result.test_accuracy)]
    if mock_exe is not None:
        test = prepare_data(config)["test"]
        # The software-trained weights on the emulated chip as they are: the gap the chip's mismatch opens.
        # As `train yinyang --target bss2-mock` does, the chip gets the mean of the last epochs' weights.
        chip_weights = result.params if result.averaged_params is None else result.averaged_params
        which = "jax weights" if result.averaged is None else f"jax weights, {result.averaged['label']}"
        deployed = evaluate_on(mock_exe, chip_weights, test, config)
        calibrated = "calibrated" if mock_exe.calibration is not None else "uncalibrated"
        rows.append((f"bss2-mock (realistic, {calibrated}), {which}", deployed))
        if args.hil_epochs:
            print(
                f"== fine-tuning on bss2-mock in the loop ({args.hil_epochs} epochs, EventProp on the recorded spikes)"
            )
            hil = train(
                target="bss2-mock",
                config=replace(config, epochs=args.hil_epochs),
                out=out / "bss2-mock",
                progress=True,
                params=chip_weights,
                exe=mock_exe,
            )
            rows.append((f"bss2-mock (realistic, {calibrated}), +{args.hil_epochs} HIL", hil.test_accuracy))
            # Runs inside jit keep no counters: the evaluation returns them (the program is compiled already).
            health = health_on(hil.exe, hil.params, test, config)
            if health is not None:
                print(f"== bss2-mock health on the test set: {health.text()}")
    print("== test accuracy")
    width = max(len(name) for name, _acc in rows)
    for name, acc in rows:
        print(f"  {name:<{width}s}  {acc:7.2%}")
    print(f"== wrote {out}/ ({', '.join(result.files)}) in {time.perf_counter() - t0:.0f} s")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``train`` and ``demo``."""
    p = subparsers.add_parser("train", help="train a task end to end (yinyang) and write metrics, params and plots")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    y = tasks.add_parser("yinyang", help="the Yin-Yang first-spike classification task (5 -> hidden -> 3)")
    y.add_argument("--target", choices=("jax", "bss2-mock"), default="jax", help="where to train (default jax)")
    y.add_argument(
        "--mock", choices=("ideal", "realistic"), default="realistic", help="bss2-mock preset (default realistic)"
    )
    y.add_argument("--hidden", type=_positive, default=120, help="hidden neurons (default 120)")
    y.add_argument(
        "--epochs",
        type=_positive,
        default=None,
        help="training epochs (default 100 on jax; 10 in the loop on bss2-mock)",
    )
    y.add_argument("--seed", type=int, default=0, help="seed of data, initial weights and batch order")
    y.add_argument("--out", default="runs/yinyang", help="output directory (default runs/yinyang)")
    y.add_argument("--no-progress", action="store_true", help="do not print per-epoch lines")
    y.add_argument(
        "--chip-ready",
        action="store_true",
        help="on jax: train the network made for BrainScaleS-2 (5x repeated inputs, weights within a synapse's "
        "range, quantization-aware) so the weights deploy on bss2-mock; implied by --target bss2-mock",
    )
    y.add_argument(
        "--pretrain-epochs",
        type=_non_negative,
        default=None,
        help="bss2-mock: software epochs before those in the loop (default 100; 0: in the loop from scratch)",
    )
    y.add_argument("--learning-rate", type=_learning_rate, default=None, help="Adam learning rate (default 1e-3)")
    y.add_argument(
        "--finetune-learning-rate",
        type=_learning_rate,
        default=None,
        help="bss2-mock: Adam learning rate in the loop after pretraining (default 3e-5)",
    )
    y.add_argument(
        "--no-calibration",
        action="store_true",
        help="bss2-mock: skip the per-neuron gain calibration of the emulated chip (on by default for the "
        "realistic preset; measured once, then cached)",
    )
    y.add_argument(
        "--average-epochs",
        type=_non_negative,
        default=None,
        help="average the weights of the last N epochs (default 10, at most half the run; 0: off); the chip "
        "gets the software pretraining's average",
    )
    y.add_argument(
        "--test-trials",
        type=_positive,
        default=None,
        help="bss2-mock with trial noise: test accuracy as the mean over this many runs (default 5)",
    )
    y.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("demo", help="Yin-Yang in a few minutes: compile, train on jax, deploy on the mock, plot")
    p.add_argument("--quick", action="store_true", help="a reduced budget (seconds, for tests); accuracy is lower")
    p.add_argument("--epochs", type=_positive, default=100, help="training epochs of the full demo (default 100)")
    p.add_argument(
        "--hil-epochs",
        type=_non_negative,
        default=1,
        help="hardware-in-the-loop epochs on bss2-mock after deploying (default 1; 0: deploy only)",
    )
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.set_defaults(func=_cmd_demo)
