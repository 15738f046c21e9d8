"""``snncomp train yinyang`` and ``snncomp demo``: the Yin-Yang task end to end from the command line."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["add_commands"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _cmd_train(args: argparse.Namespace) -> int:
    from .yinyang import train

    result = train(
        target=args.target,
        hidden=args.hidden,
        epochs=args.epochs,
        seed=args.seed,
        out=Path(args.out),
        progress=not args.no_progress,
        mock=args.mock,
    )
    print(
        f"yinyang on {result.target}: test accuracy {result.test_accuracy:.4f} "
        f"(best validation epoch {result.best_epoch}), {result.wall_seconds:.1f} s; wrote {args.out}/"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .yinyang import YinYangConfig, build_network, compile_for, evaluate_on, prepare_data, train

    t0 = time.perf_counter()
    if args.quick:
        # A reduced budget for tests: less data, a smaller hidden layer, few epochs.
        config = YinYangConfig(hidden=40, epochs=10, n_train=2048, n_val=256, n_test=256, learning_rate=3e-3)
    else:
        config = YinYangConfig(hidden=120, epochs=args.epochs)
    out = Path(args.out)
    net = build_network(config)
    print(f"== network: yinyang {5} -> {config.hidden} -> 3 (LIF, one spike per neuron, t_max {config.t_max} s)")
    exe = compile_for(net, "jax", config)
    print("== lowered IR (target jax)")
    print(exe.report())

    mock_exe = None
    try:
        mock_exe = compile_for(net, "bss2-mock", config, mock="realistic")
    except Exception as exc:
        print(f"== bss2-mock: skipped ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
    if mock_exe is not None:
        import snncomp

        from .targets.bss2.report import format_report

        print("== BrainScaleS-2 resource report")
        try:
            print(format_report(snncomp.pipeline("bss2").run(net.build())))
        except Exception as exc:  # a report problem must not hide the training result
            print(f"(resource report unavailable: {str(exc).splitlines()[0] if str(exc) else exc!r})")

    print(f"== training on jax ({config.epochs} epochs, {config.n_train} samples)")
    result = train(target="jax", config=config, out=out, progress=True)
    rows = [("jax", result.test_accuracy)]
    if mock_exe is not None:
        # Deploy the JAX-trained weights on the emulated chip without retraining.
        try:
            acc = evaluate_on(mock_exe, result.params, prepare_data(config)["test"], config)
        except Exception as exc:  # the emulator is young: report it in one line, keep the jax result
            print(
                f"== bss2-mock: deploying the trained weights failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"
            )
        else:
            rows.append(("bss2-mock (realistic, jax weights)", acc))
    print("== test accuracy")
    for name, acc in rows:
        print(f"  {name:<36s} {acc:7.2%}")
    print(f"== wrote {out}/ ({', '.join(result.files)}) in {time.perf_counter() - t0:.0f} s")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train`` and ``demo``."""
    p = subparsers.add_parser("train", help="train a task end to end (yinyang) and write metrics, params and plots")
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    y = tasks.add_parser("yinyang", help="the Yin-Yang first-spike classification task (5 -> hidden -> 3)")
    y.add_argument("--target", choices=("jax", "bss2-mock"), default="jax", help="where to train (default jax)")
    y.add_argument("--mock", choices=("ideal", "realistic"), default="realistic", help="bss2-mock preset")
    y.add_argument("--hidden", type=_positive, default=120, help="hidden neurons (default 120)")
    y.add_argument("--epochs", type=_positive, default=100, help="training epochs (default 100)")
    y.add_argument("--seed", type=int, default=0, help="seed of data, initial weights and batch order")
    y.add_argument("--out", default="runs/yinyang", help="output directory (default runs/yinyang)")
    y.add_argument("--no-progress", action="store_true", help="do not print per-epoch lines")
    y.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("demo", help="Yin-Yang in a few minutes: compile, train on jax, deploy on the mock, plot")
    p.add_argument("--quick", action="store_true", help="a reduced budget (seconds, for tests); accuracy is lower")
    p.add_argument("--epochs", type=_positive, default=60, help="training epochs of the full demo (default 60)")
    p.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    p.set_defaults(func=_cmd_demo)
