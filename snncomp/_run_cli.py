"""``snncomp run``: simulate a network file on input spikes from a JSON file.

Input file: one entry per input population, ``{"x": {"times": [...], "neurons": [...]}}``;
``times`` and ``neurons`` are lists (one sample) or lists of lists (a batch).
Output (stdout, or ``-o FILE``): ``{"network", "t_max", "spikes": {pop: {"times", "neurons"}},
"overflow": {pop: bool or [bool per sample]}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def _load_inputs(path: str) -> dict[str, Any]:
    from .runtime import InputError, Spikes

    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the inputs file: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected an object mapping input names to {{'times': [...], 'neurons': [...]}}")
    out: dict[str, Any] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"times", "neurons"}:
            raise InputError(f"{path}: input '{name}' must be an object with exactly 'times' and 'neurons'")
        out[name] = Spikes.from_lists(entry["times"], entry["neurons"])
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from . import ir
    from .runtime import compile as compile_network

    net = ir.load(args.network)
    options: dict[str, Any] = {"t_max": args.t_max}
    if args.spikes_per_neuron is not None:
        options["spikes_per_neuron"] = args.spikes_per_neuron
    if args.strategy:
        options["strategy"] = args.strategy
    exe = compile_network(net, target="jax", **options)
    rec = exe.run(_load_inputs(args.inputs), on_overflow="raise" if args.strict else "flag")
    spikes = {}
    for name, sp in rec.spikes.items():
        t = np.asarray(sp.times, np.float64)
        n = np.asarray(sp.neurons)
        if t.ndim == 1:
            spikes[name] = {"times": t[n >= 0].tolist(), "neurons": n[n >= 0].astype(int).tolist()}
        else:
            spikes[name] = {
                "times": [
                    row[m >= 0].tolist() for row, m in zip(t.reshape(-1, t.shape[-1]), n.reshape(-1, n.shape[-1]))
                ],
                "neurons": [m[m >= 0].astype(int).tolist() for m in n.reshape(-1, n.shape[-1])],
            }
    overflow = {
        k: (bool(v) if np.ndim(v) == 0 else np.asarray(v).reshape(-1).tolist()) for k, v in rec.overflow.items()
    }
    result = {"network": net.name, "t_max": float(rec.t_max), "spikes": spikes, "overflow": overflow}
    text = json.dumps(result, indent=1) + "\n"
    if args.output:
        Path(args.output).write_text(text)
        total = sum(int(np.sum(np.asarray(sp.neurons) >= 0)) for sp in rec.spikes.values())
        print(f"{args.output}: {total} spikes from {len(spikes)} population(s)")
    else:
        sys.stdout.write(text)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``snncomp run`` to the CLI's sub-parsers."""
    p = sub.add_parser("run", help="simulate a network (jax target) on input spikes from a JSON file")
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("--inputs", required=True, help='JSON: {"input": {"times": [...], "neurons": [...]}}')
    p.add_argument("--t-max", type=float, required=True, help="simulated window in seconds")
    p.add_argument("--spikes-per-neuron", type=int, help="buffer bound for populations with unbounded max_spikes")
    p.add_argument("--strategy", choices=("auto", "event-queue"), help="force the event-queue schedule")
    p.add_argument("--strict", action="store_true", help="fail if an event buffer overflows")
    p.add_argument("-o", "--output", help="write the spikes as JSON to this file")
    p.set_defaults(func=_cmd_run)
