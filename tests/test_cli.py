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
    for cmd in ("validate", "inspect", "compile", "passes", "schema"):
        assert cmd in r.stdout


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.json")))
def test_examples_validate_and_inspect(example: str) -> None:
    r = snncomp("validate", f"examples/{example}")
    assert r.returncode == 0, r.stderr
    r = snncomp("inspect", "--text", f"examples/{example}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("network @")


def test_invalid_file_gives_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"name": "n", "nodes": [{"kind": "lif", "name": "h", "size": 2, "tau_mem": 0.0, "tau_syn": 1.0}]})
    )
    r = snncomp("validate", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "nodes[0] 'h' (lif): tau_mem: must be > 0" in r.stderr
    r = snncomp("--debug", "validate", str(bad))
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_schema_command_matches_docs() -> None:
    r = snncomp("schema")
    assert r.returncode == 0
    assert json.loads(r.stdout) == json.loads((ROOT / "docs" / "schema.json").read_text())


def test_compile_prints_every_stage() -> None:
    r = snncomp("compile", "examples/recurrent.json", "--target", "jax", "--print-ir-after-all")
    assert r.returncode == 0, r.stderr
    for stage in ("input", "'verify'", "'infer-shapes'", "'canonicalize'", "'analyze-structure'", "'schedule'"):
        assert f"// ----- IR after {stage} ----- //" in r.stdout
    assert "attr schedule = 0:event-queue(rec) -> 1:layer-parallel(readout); buffers: rec=400" in r.stdout


def test_compile_writes_dot_and_json(tmp_path: Path) -> None:
    out = tmp_path / "compiled.json"
    r = snncomp("compile", "examples/yinyang.json", "--dot", str(tmp_path / "dot"), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    dots = sorted((tmp_path / "dot").glob("*.dot"))
    assert dots[0].name == "00-input.dot" and len(dots) == 6
    text = dots[-1].read_text()
    assert text.startswith('digraph "yinyang"') and "layer-parallel" in text
    assert json.loads(out.read_text())["name"] == "yinyang"
    dot = shutil.which("dot")
    if dot:  # Graphviz is optional on the test machine; the dot text itself is tested above.
        svg = subprocess.run([dot, "-Tsvg", str(dots[-1])], capture_output=True, text=True, timeout=60)
        assert svg.returncode == 0 and "<svg" in svg.stdout


def test_compile_errors_are_one_line(tmp_path: Path) -> None:
    r = snncomp("compile", "examples/yinyang.json", "--passes", "verify,canonicalise")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Did you mean 'canonicalize'" in r.stderr
    r = snncomp("compile", "examples/yinyang.json", "--passes", "verify,schedule")
    assert r.returncode == 2 and "run 'analyze-structure' before it" in r.stderr
    r = snncomp("compile", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "cannot read file" in r.stderr and "Traceback" not in r.stderr


def test_inspect_table() -> None:
    r = snncomp("inspect", "examples/recurrent.json")
    assert r.returncode == 0, r.stderr
    for word in ("populations", "projections", "rec->rec", "event-queue", "layer-parallel", "structure: recurrent"):
        assert word in r.stdout
    r = snncomp("inspect", "--text", "examples/recurrent.json")
    assert r.stdout.startswith("network @recurrent")


@pytest.mark.parametrize("command", ["validate", "inspect", "compile", "schema", "passes"])
def test_every_command_has_help(command: str) -> None:
    r = snncomp(command, "--help")
    assert r.returncode == 0 and "usage: snncomp" in r.stdout


def test_nir_round_trip_through_the_cli(tmp_path: Path) -> None:
    pytest.importorskip("nir")
    nir_file = tmp_path / "net.nir"
    back = tmp_path / "back.json"
    r = snncomp("export-nir", "examples/recurrent.json", "-o", str(nir_file))
    assert r.returncode == 0, r.stderr
    r = snncomp("import-nir", str(nir_file), "-o", str(back))
    assert r.returncode == 0, r.stderr
    from snncomp import ir

    assert ir.load(back) == ir.load(ROOT / "examples" / "recurrent.json")
    r = snncomp("import-nir", str(tmp_path / "missing.nir"), "-o", str(back))
    assert r.returncode == 2 and "Traceback" not in r.stderr
