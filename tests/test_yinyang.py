"""Yin-Yang end to end: a short seeded training run, its artifacts, and ``snncomp demo --quick``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from snncomp import yinyang
from snncomp.errors import SnnCompError
from snncomp.train import load_checkpoint

# Small but real: 1024 training samples, 40 hidden neurons, 4 epochs.
QUICK = yinyang.YinYangConfig(hidden=40, epochs=4, n_train=1024, n_val=256, n_test=256, learning_rate=3e-3, seed=0)
QUICK_ACCURACY = 0.6  # chance is 1/3; measured 0.648 for this seed


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[yinyang.YinYangResult, Path]:
    out = tmp_path_factory.mktemp("yinyang")
    with jax.enable_x64(False):
        result = yinyang.train(target="jax", config=QUICK, out=out, progress=False)
    return result, out


def test_short_training_run_learns(quick_run: tuple[yinyang.YinYangResult, Path]) -> None:
    result, _ = quick_run
    assert len(result.records) == QUICK.epochs
    assert result.test_accuracy >= QUICK_ACCURACY, result.records
    assert result.records[-1]["val_accuracy"] > result.records[0]["val_accuracy"] - 0.05


def test_artifacts_are_written(quick_run: tuple[yinyang.YinYangResult, Path]) -> None:
    result, out = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("epochs", "final_test_accuracy", "wall_seconds", "samples_per_s", "config", "target"):
        assert key in metrics
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_s"):
        assert key in metrics["epochs"][0]
    assert metrics["final_test_accuracy"] == pytest.approx(result.test_accuracy)
    params, _, meta = load_checkpoint(out / "params.npz", result.params)
    np.testing.assert_array_equal(np.asarray(params["weight"]["x->h"]), np.asarray(result.params["weight"]["x->h"]))
    assert meta["target"] == "jax"
    assert (out / "network.json").is_file()
    pytest.importorskip("matplotlib")
    for name in ("training_curves.png", "decision_map.png", "spike_raster.png", "hidden_spike_times.png"):
        assert (out / name).stat().st_size > 1000, name


def test_bad_target_is_a_one_line_error() -> None:
    with pytest.raises(SnnCompError, match="unknown target"):
        yinyang.compile_for(yinyang.build_network(QUICK), "loihi", QUICK)


def test_demo_quick_runs_end_to_end(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snncomp", "demo", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lowered IR (target jax)" in proc.stdout
    assert "test accuracy" in proc.stdout and "jax" in proc.stdout
    assert "bss2-mock" in proc.stdout  # either the mock's accuracy or why it was skipped
    assert (tmp_path / "metrics.json").is_file()


@pytest.mark.slow
def test_full_jax_run_reaches_the_target_accuracy(tmp_path: Path) -> None:
    result = yinyang.train(target="jax", hidden=120, epochs=100, seed=0, out=tmp_path, progress=False)
    assert result.test_accuracy >= 0.95
