"""``examples/partitioned_yinyang.py --quick``: Yin-Yang trained on jax, then run and fine-tuned in the loop
on the emulator cut into partitions (the demonstration of ``docs/results.md``, "Beyond one chip")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHANCE = 0.4  # three classes: chance is 1/3


@pytest.mark.slow
def test_quick_partitioned_yinyang(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    # A subprocess: the script times partitions by wrapping their run methods, and compiles several
    # executables; neither should leak into the test session.
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "partitioned_yinyang.py"), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["executable"] == "PartitionedExecutable"
    assert result["partitions"] >= 2
    assert len(result["timing"]) == result["partitions"]
    assert all(t["us_per_sample"] > 0 and "engine" in t["engine"] for t in result["timing"])
    for stage in ("jax_test", "deployed_test", "loop_test"):
        assert result[stage] > CHANCE, (stage, result)
    assert "| 25 -> 40 -> 3 |" in run.stdout
