"""``snncomp run``: simulate a network file on input spikes from a JSON file.

Input file: one entry per input population, ``{"x": {"times": [...], "neurons": [...]}}``;
``times`` and ``neurons`` are lists (one sample) or lists of lists (a batch).
Output (stdout, or ``-o FILE``): ``{"network", "t_max", "spikes": {pop: {"times", "neurons"}},
"overflow": {pop: bool or [bool per sample]}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def _describe(value: Any) -> str:
    """``value`` as a user wrote it in JSON: ``'abc'``, ``null``, ``an object``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _numbers(values: list[Any], where: str, *, integers: bool) -> list[Any]:
    """Check that ``values`` is a flat list of JSON numbers (integers for neuron indices)."""
    out: list[Any] = []
    for i, v in enumerate(values):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok and integers:
            ok = isinstance(v, int) or (math.isfinite(v) and float(v).is_integer())
            if ok and not -(2**31) <= v < 2**31:
                raise ValueError(f"{where}[{i}]: neuron index {v} is out of range")
            v = int(v) if ok else v
        elif ok:
            try:
                v = float(v)
            except OverflowError:
                raise ValueError(f"{where}[{i}]: {_describe(v)} does not fit a float64") from None
        if not ok:
            what = "an integer (a neuron index)" if integers else "a number (a spike time in seconds)"
            raise ValueError(f"{where}[{i}]: expected {what}, got {_describe(v)}")
        out.append(v)
    return out


def _check_entry(entry: Any) -> tuple[list[Any], list[Any]]:
    """Validate one input's ``{"times": ..., "neurons": ...}``; a ``ValueError`` names the field."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object with 'times' and 'neurons', got {_describe(entry)}")
    missing = [k for k in ("times", "neurons") if k not in entry]
    extra = sorted(set(entry) - {"times", "neurons"})
    if missing or extra:
        problems = [f"missing {', '.join(map(repr, missing))}"] if missing else []
        problems += [f"unknown field(s) {', '.join(map(repr, extra))}"] if extra else []
        raise ValueError(f"expected exactly 'times' and 'neurons': {'; '.join(problems)}")
    times, neurons = entry["times"], entry["neurons"]
    for key, value in (("times", times), ("neurons", neurons)):
        if not isinstance(value, list):
            raise ValueError(
                f"{key}: expected a list (one sample) or a list of lists (a batch), got {_describe(value)}"
            )
    batched = any(isinstance(t, list) for t in times) or any(isinstance(n, list) for n in neurons)
    if not batched:
        t_rows, n_rows = [times], [neurons]
    else:
        for key, value in (("times", times), ("neurons", neurons)):
            for i, row in enumerate(value):
                if not isinstance(row, list):
                    raise ValueError(f"{key}[{i}]: expected a list (a batch is a list of lists), got {_describe(row)}")
        if len(times) != len(neurons):
            raise ValueError(f"{len(times)} samples of times but {len(neurons)} of neurons")
        t_rows, n_rows = times, neurons
    out_t, out_n = [], []
    for b, (t, n) in enumerate(zip(t_rows, n_rows)):
        suffix = f"[{b}]" if batched else ""
        out_t.append(_numbers(t, f"times{suffix}", integers=False))
        out_n.append(_numbers(n, f"neurons{suffix}", integers=True))
        if len(t) != len(n):
            sample = f"sample {b}: " if batched else ""
            raise ValueError(f"{sample}{len(t)} spike times but {len(n)} neuron indices; give one index per time")
    return (out_t, out_n) if batched else (out_t[0], out_n[0])


def _load_inputs(path: str) -> dict[str, Any]:
    """Read and check the inputs file; an :class:`InputError` names the file and the field."""
    from ..runtime import InputError, Spikes

    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the inputs file: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not JSON: not UTF-8 text ({exc.reason})") from None
    except RecursionError:
        raise InputError(f"{path}: not JSON this program can read: nested too deeply") from None
    if not isinstance(data, dict):
        raise InputError(
            f"{path}: expected an object mapping input names to {{'times': [...], 'neurons': [...]}}, "
            f"got {_describe(data)}"
        )
    out: dict[str, Any] = {}
    for name, entry in data.items():
        try:
            times, neurons = _check_entry(entry)
        except ValueError as exc:
            raise InputError(f"{path}: {name}: {exc}") from None
        out[name] = Spikes.from_lists(times, neurons)
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import ir
    from ..runtime import compile as compile_network

    net = ir.load(args.network)
    inputs = _load_inputs(args.inputs)  # before compiling: a bad file fails at once
    options: dict[str, Any] = {"t_max": args.t_max}
    if args.spikes_per_neuron is not None:
        options["spikes_per_neuron"] = args.spikes_per_neuron
    if args.strategy:
        options["strategy"] = args.strategy
    if args.event_loop:
        options["event_loop"] = args.event_loop
    exe = compile_network(net, target="jax", **options)
    rec = exe.run(inputs, on_overflow="raise" if args.strict else "flag")
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
    from ._types import positive_int

    p = sub.add_parser("run", help="simulate a network (jax target) on input spikes from a JSON file")
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("--inputs", required=True, help='JSON: {"input": {"times": [...], "neurons": [...]}}')
    p.add_argument("--t-max", type=float, required=True, help="simulated window in seconds")
    p.add_argument(
        "--spikes-per-neuron", type=positive_int, help="buffer bound for populations with unbounded max_spikes"
    )
    p.add_argument("--strategy", choices=("auto", "event-queue"), help="force the event-queue schedule")
    p.add_argument(
        "--event-loop",
        choices=("auto", "native", "vectorized"),
        help="how event-queue stages run: in C (native), as a lax.while_loop (vectorized), or chosen per stage",
    )
    p.add_argument("--strict", action="store_true", help="fail if an event buffer overflows")
    p.add_argument("-o", "--output", help="write the spikes as JSON to this file")
    p.set_defaults(func=_cmd_run)
