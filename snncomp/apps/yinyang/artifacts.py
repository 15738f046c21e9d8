"""The files of a Yin-Yang run: ``metrics.json``, ``params.npz``, ``network.json``, the bss2 config, the plots."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import YinYangResult
from .plots import write_plots


def write_artifacts(
    result: YinYangResult,
    out: Path,
    *,
    evaluator: Any = None,
    data: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Write ``metrics.json``, ``params.npz``, ``network.json`` (and the bss2 config) and the plots."""
    from ... import ir
    from ...train import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    files = []
    (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=1, default=float) + "\n")
    files.append("metrics.json")
    save_checkpoint(out / "params.npz", result.params, meta={"target": result.target, "config": asdict(result.config)})
    files.append("params.npz")
    exe = result.exe
    if exe is not None:
        ir.save(exe.network, out / "network.json")
        files.append("network.json")
        if result.target == "bss2-mock" and hasattr(exe, "hardware_config"):
            # The configuration with the trained weights in its synapses: what the chip would be sent.
            exe.hardware_config(result.params).save(out / "hardware_config.json")
            files.append("hardware_config.json")
    files += write_plots(result, out, evaluator=evaluator, data=data, say=say)
    return files
