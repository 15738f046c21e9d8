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


def test_weight_average_is_reported_not_selected_on_jax(quick_run: tuple[yinyang.YinYangResult, Path]) -> None:
    result, out = quick_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["averaged"]["label"] == "mean of epochs 2-3"  # half of the 4 epochs
    assert metrics["selected"] == f"epoch {result.best_epoch}"  # selection on jax stays per epoch
    assert metrics["test_trials"] == [result.test_accuracy]  # deterministic target: one run
    avg = result.averaged_params["weight"]["x->h"]
    assert not np.array_equal(avg, np.asarray(result.params["weight"]["x->h"]))
    evaluator = yinyang._Evaluator(result.exe, QUICK)
    assert evaluator(result.averaged_params, yinyang.prepare_data(QUICK)["val"])["accuracy"] == pytest.approx(
        metrics["averaged"]["val_accuracy"]
    )


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
        timeout=420,  # ~100 s alone on 2 cores (calibration measured); generous for a loaded CI machine
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "lowered IR (target jax)" in proc.stdout
    assert "test accuracy" in proc.stdout and "jax" in proc.stdout
    assert "bss2-mock" in proc.stdout  # either the mock's accuracy or why it was skipped
    assert (tmp_path / "metrics.json").is_file()
    if yinyang.bss2_available():
        assert "BrainScaleS-2 resources" in proc.stdout
        # The chip is calibrated before deployment, and the report says how well.
        assert "gain calibration of chip_seed=0" in proc.stdout
        assert "(realistic, calibrated), jax weights" in proc.stdout and "HIL" in proc.stdout


def test_chip_ready_network_computes_what_the_plain_one_does() -> None:
    """Repeated inputs start with their weight shared over the copies: same spikes as the 5-input network."""
    plain = yinyang.YinYangConfig(hidden=16, n_train=64, n_val=8, n_test=8)
    chip = yinyang.YinYangConfig.chip_ready(hidden=16, n_train=64, n_val=8, n_test=8)
    assert chip.n_inputs == 25 and chip.weight_bound == pytest.approx(63 / 58)
    outs = []
    for cfg in (plain, chip):
        inputs, _ = yinyang.prepare_data(cfg)["test"]
        exe = yinyang.compile_for(yinyang.build_network(cfg), "jax", cfg)
        rec = exe.run(inputs)
        outs.append([np.asarray(rec.spikes[p].to_first_spike_times(n)) for p, n in (("h", 16), ("o", 3))])
    times = np.asarray(yinyang.prepare_data(chip)["test"][0]["x"].to_first_spike_times(25))
    np.testing.assert_array_equal(times[:, ::5], times[:, 4::5])  # the copies of a channel spike together
    for a, b in zip(*outs):
        assert np.isfinite(a).any()
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-8)


def test_fake_quantize_rounds_in_value_and_passes_gradients() -> None:
    w = jax.numpy.asarray([[0.0, 0.01, -0.5, 1.07]])
    params = {"weight": {"a": w}, "delay": {"a": jax.numpy.zeros(())}}
    q = yinyang.fake_quantize(params, 58.0)["weight"]["a"]
    np.testing.assert_allclose(np.asarray(q) * 58.0, np.round(np.asarray(w) * 58.0), atol=1e-4)
    g = jax.grad(lambda p: jax.numpy.sum(yinyang.fake_quantize(p, 58.0)["weight"]["a"] * 3.0))(params)
    np.testing.assert_array_equal(np.asarray(g["weight"]["a"]), 3.0)


# A short hardware-in-the-loop run on the realistic emulator, from a brief software pretraining.
HIL_QUICK = yinyang.YinYangConfig.chip_ready(
    hidden=40, epochs=1, n_train=2048, n_val=256, n_test=256, learning_rate=3e-3, pretrain_epochs=10, seed=0
)
HIL_ACCURACY = 0.6  # chance is 1/3; see the measured value in the assertion message


def test_short_hardware_in_the_loop_run_learns(tmp_path: Path) -> None:
    if not yinyang.bss2_available():
        pytest.skip("bss2-mock is not available")
    with jax.enable_x64(False):
        result = yinyang.train(target="bss2-mock", config=HIL_QUICK, out=tmp_path, progress=False)
    assert result.pretrain is not None and 0.0 <= result.pretrain["deployed_test_accuracy"] <= 1.0
    assert len(result.records) == HIL_QUICK.epochs
    assert result.test_accuracy >= HIL_ACCURACY, (result.pretrain, result.records)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["target"] == "bss2-mock" and metrics["pretrain"]["epochs"] == HIL_QUICK.pretrain_epochs
    # The emulated chip was calibrated; the pretrained weights competed in model selection (epoch -1).
    assert metrics["calibration"].startswith("gain calibration of chip_seed=0 (43 circuits")
    assert 0.0 <= metrics["start_val_accuracy"] <= 1.0
    vals = [r["val_accuracy"] for r in metrics["epochs"]]
    picked = metrics["start_val_accuracy"] if result.best_epoch == -1 else vals[result.best_epoch]
    assert picked == max([metrics["start_val_accuracy"], *vals])  # selection over the start and every epoch
    # The chip got the mean of the pretraining's last 5 epochs, not its best-validation epoch.
    assert metrics["pretrain"]["handed_on"] == "mean of epochs 5-9"
    # Test accuracy on the noisy chip: the mean over independent trials, which differ.
    runs = metrics["test_trials"]
    assert len(runs) == HIL_QUICK.test_trials and metrics["final_test_accuracy"] == pytest.approx(np.mean(runs))
    assert len(set(metrics["pretrain"]["deployed_test_trials"])) > 1
    from snncomp.targets.bss2 import HardwareConfig

    saved = HardwareConfig.load(tmp_path / "hardware_config.json")
    assert saved == result.exe.hardware_config(result.params)  # the trained weights, not the initial ones
    assert saved != result.exe.hardware_config(result.exe.params)
    # The recorded run's weights stayed within what one synapse realises.
    for w in result.params["weight"].values():
        assert float(np.max(np.abs(np.asarray(w)))) <= HIL_QUICK.weight_bound + 1e-6


@pytest.mark.slow
def test_full_jax_run_reaches_the_target_accuracy(tmp_path: Path) -> None:
    result = yinyang.train(target="jax", hidden=120, epochs=100, seed=0, out=tmp_path, progress=False)
    assert result.test_accuracy >= 0.95


def test_train_command_passes_its_options_into_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from snncomp import cli

    seen = {}

    def fake_train(**kwargs: object) -> SimpleNamespace:
        seen.update(kwargs)
        return SimpleNamespace(pretrain=None, target="bss2-mock", test_accuracy=0.5, selected="epoch 0", wall_seconds=1)

    monkeypatch.setattr(yinyang, "train", fake_train)
    argv = ["train", "yinyang", "--target", "bss2-mock", "--hidden", "400", "--epochs", "4", "--seed", "3"]
    argv += ["--average-epochs", "0", "--test-trials", "7", "--no-calibration", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    config = seen["config"]
    assert (config.hidden, config.epochs, config.seed) == (400, 4, 3)
    assert (config.average_epochs, config.test_trials, config.calibrate) == (0, 7, False)
    assert config.input_repeat == 5 and seen["target"] == "bss2-mock"  # chip-ready on the chip
