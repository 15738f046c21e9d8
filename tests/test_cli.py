"""The console script, run for real in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def snncomp(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("snncomp", path=os.path.dirname(sys.executable)) or shutil.which("snncomp")
    cmd = [exe] if exe else [sys.executable, "-m", "snncomp"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_help_lists_commands() -> None:
    r = snncomp("--help")
    assert r.returncode == 0
    for cmd in ("validate", "inspect", "schema"):
        assert cmd in r.stdout


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.json")))
def test_examples_validate_and_inspect(example: str) -> None:
    r = snncomp("validate", f"examples/{example}")
    assert r.returncode == 0, r.stderr
    r = snncomp("inspect", f"examples/{example}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("network @")


def test_invalid_file_gives_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "n", "nodes": [{"kind": "lif", "name": "h", "size": 2, "tau_mem": 0.0, "tau_syn": 1.0}]})
    )
    r = snncomp("validate", str(bad))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "nodes[0] 'h' (lif): tau_mem: must be > 0" in r.stderr
    r = snncomp("--debug", "validate", str(bad))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_schema_command_matches_docs() -> None:
    r = snncomp("schema")
    assert r.returncode == 0
    assert json.loads(r.stdout) == json.loads((ROOT / "docs" / "schema.json").read_text())
