"""The spike-based per-neuron gain calibration of ``bss2-mock`` (``calibrate_gain``).

The ground truth is the emulated chip's own fixed-pattern draw (``circuit_deviations``): with only a
gain spread the trims must undo it, with only threshold offsets they must scale with the threshold
distance. A small chip (2 x 32 circuits) keeps each calibration to seconds.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import snncomp
from snncomp.errors import TargetError
from snncomp.targets.bss2.chip import ChipSpec
from snncomp.targets.bss2.mock import GainCalibration, MockConfig, cached_calibration, calibrate_gain
from snncomp.targets.bss2.mock import _calibrate as calibrate_module
from snncomp.targets.bss2.mock._neurons import circuit_deviations

SMALL = ChipSpec(columns=32, columns_per_event_output=4)
SEED = 5


def _deviations(mock: MockConfig) -> np.ndarray:
    return circuit_deviations(SimpleNamespace(chip=SMALL), mock, SEED)


@pytest.fixture(scope="module")
def realistic() -> GainCalibration:
    return calibrate_gain(MockConfig.realistic(), SEED, chip=SMALL)


def test_trims_undo_the_gain_spread() -> None:
    mock = MockConfig(fpn_gain=0.05)
    cal = calibrate_gain(mock, SEED, chip=SMALL, rounds=1, repeats=1)
    d = _deviations(mock)
    assert np.std(d[3]) > 0.035  # there is something to undo
    # Trimmed gain = (1 + d) * trim: the design value to within the measurement's resolution.
    assert np.max(np.abs((1 + d[3]) * cal.exc - 1)) < 0.012
    assert np.max(np.abs((1 + d[4]) * cal.inh - 1)) < 0.02
    assert np.std((1 + d[3]) * cal.exc) < 0.006  # one wide scan: steps of about 1 %


def test_no_chip_wide_gain_error() -> None:
    # A first-spike network loses points to a common gain error of 0.5 %, so the trims must be
    # unbiased on average, not only close per circuit. The design reference measured on whole-unit
    # drive levels alone was off by about half a scan step (-0.4 to -0.5 % here).
    mock = MockConfig(fpn_gain=0.05, threshold_noise=0.5)
    cal = calibrate_gain(mock, SEED, chip=SMALL)
    d = _deviations(mock)
    assert abs(np.mean((1 + d[3]) * cal.exc) - 1) < 0.0015
    assert abs(np.mean((1 + d[4]) * cal.inh) - 1) < 0.0015


def test_trims_follow_the_threshold_distance() -> None:
    mock = MockConfig(fpn_v_threshold=2.0)
    cal = calibrate_gain(mock, SEED, chip=SMALL, rounds=1, repeats=1)
    d = _deviations(mock)
    theta = 70.0  # v_threshold - v_leak of the default parameter mapping, LSB
    expected = (theta + d[5]) / theta  # a farther threshold needs proportionally more gain
    assert np.max(np.abs(cal.exc / expected - 1)) < 0.012
    assert np.max(np.abs(cal.inh / expected - 1)) < 0.02


def test_realistic_chip_spread_shrinks(realistic: GainCalibration) -> None:
    assert np.std(realistic.before_exc) > 0.04 and np.std(realistic.before_inh) > 0.04
    assert np.std(realistic.residual_exc) < 0.01
    assert np.std(realistic.residual_inh) < 0.015
    assert realistic.exc.shape == (2, 32)
    assert "->" in realistic.text()


def test_calibration_is_deterministic(realistic: GainCalibration) -> None:
    again = calibrate_gain(MockConfig.realistic(), SEED, chip=SMALL)
    np.testing.assert_array_equal(again.exc, realistic.exc)
    np.testing.assert_array_equal(again.inh, realistic.inh)


def _net() -> snncomp.ir.Network:
    net = snncomp.Network("cal")
    x = net.input("x", 5)
    h = net.lif("h", 4, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=np.full((5, 4), 1.0))  # 5 x 58 = 290 units, 1.25x the critical drive
    return net.build()


def _small(net: object = None, **options: object) -> snncomp.runtime.Executable:
    """``net`` (default ``_net()``) on the small realistic chip ``SEED``; ``options`` override."""
    kw = {"t_max": 0.03, "mock": MockConfig.realistic(), "chip_seed": SEED, "chip": SMALL, **options}
    return snncomp.compile(_net() if net is None else net, target="bss2-mock", **kw)


def test_compile_applies_and_reports_it(realistic: GainCalibration) -> None:
    inputs = {"x": snncomp.Spikes.from_first_spike_times(np.zeros((1, 5)))}
    plain = _small()
    trimmed = _small(calibration=realistic)
    assert "gain calibration of chip_seed=5" in str(trimmed.report())
    t_plain = np.asarray(plain.run(inputs, trial=0).spikes["h"].to_first_spike_times(4))
    t_trim = np.asarray(trimmed.run(inputs, trial=0).spikes["h"].to_first_spike_times(4))
    assert np.all(np.isfinite(t_plain)) and np.all(np.isfinite(t_trim))
    # Identical inputs and weights: the calibrated neurons fire closer together.
    assert np.ptp(t_trim) < np.ptp(t_plain)


def test_calibration_of_another_chip_is_refused(realistic: GainCalibration) -> None:
    with pytest.raises(TargetError, match=r"chip_seed=5.*chip_seed=6"):
        _small(chip_seed=6, calibration=realistic)
    with pytest.raises(TargetError, match="fixed-pattern spreads"):
        _small(mock=MockConfig(fpn_gain=0.1), calibration=realistic)
    with pytest.raises(TargetError, match="covers"):
        _small(chip=None, calibration=realistic)
    with pytest.raises(TargetError, match="must be a GainCalibration"):
        snncomp.compile(_net(), target="bss2-mock", t_max=0.03, calibration={"exc": 1})


def test_bad_arguments() -> None:
    with pytest.raises(TargetError, match="rounds"):
        calibrate_gain(MockConfig.realistic(), chip=SMALL, rounds=0)
    with pytest.raises(TargetError, match="step"):
        calibrate_gain(MockConfig.realistic(), chip=SMALL, step=0.5)


def test_save_load_and_cache(realistic: GainCalibration, tmp_path, monkeypatch) -> None:
    path = tmp_path / "cal.json"
    realistic.save(path)
    back = GainCalibration.load(path)
    for f in ("exc", "inh", "measured", "residual_exc", "residual_inh", "before_exc", "before_inh"):
        np.testing.assert_array_equal(getattr(back, f), getattr(realistic, f))
    assert back.measured.dtype == bool
    for f in ("fpn", "chip_seed", "step", "rounds", "tau_mem", "tau_syn", "fingerprint"):
        assert getattr(back, f) == getattr(realistic, f)

    calls: list[int] = []

    def fake(mock: MockConfig, chip_seed: int = 0, **options: object) -> GainCalibration:
        calls.append(chip_seed)
        return realistic

    monkeypatch.setattr(calibrate_module, "calibrate_gain", fake)
    said: list[str] = []
    first = cached_calibration(MockConfig.realistic(), SEED, cache_dir=tmp_path, log=said.append, chip=SMALL)
    second = cached_calibration(MockConfig.realistic(), SEED, cache_dir=tmp_path, log=said.append, chip=SMALL)
    assert calls == [SEED] and len(said) == 1  # measured once, then loaded
    np.testing.assert_array_equal(second.exc, first.exc)
    cached_calibration(MockConfig.realistic(), SEED + 1, cache_dir=tmp_path, chip=SMALL)
    assert calls == [SEED, SEED + 1]  # another chip is another file
    for f in tmp_path.glob("bss2-mock-gain-calibration-*.json"):
        f.write_text("{damaged")
    cached_calibration(MockConfig.realistic(), SEED, cache_dir=tmp_path, chip=SMALL)
    assert calls == [SEED, SEED + 1, SEED]  # a damaged file is measured again, not trusted


def test_circuits_limit_the_measurement(realistic: GainCalibration) -> None:
    chosen = [*range(10), 32 + 3, 32 + 20]
    part = calibrate_gain(MockConfig.realistic(), SEED, chip=SMALL, rounds=1, circuits=chosen)
    mask = np.zeros((2, 32), bool)
    mask[0, :10] = mask[1, 3] = mask[1, 20] = True
    np.testing.assert_array_equal(part.measured, mask)
    assert np.all(part.exc[~mask] == 1.0) and np.all(part.inh[~mask] == 1.0)
    # The same circuits, measured alone: the same trims to within the measurement's resolution.
    assert np.max(np.abs(part.exc[mask] / realistic.exc[mask] - 1)) < 0.02
    assert "12 circuits" in part.text()
    # A network on circuits the calibration did not cover says so.
    net = _net()
    net = net.model_copy(update={"metadata": {**net.metadata, "bss2.placement": {"h": {"circuits": [8, 9, 10, 11]}}}})
    exe = _small(net, calibration=part)
    assert "2 circuit(s) in use were not covered by the gain calibration" in str(exe.report())
    with pytest.raises(TargetError, match="circuits must be ids"):
        calibrate_gain(MockConfig.realistic(), SEED, chip=SMALL, circuits=[64])


def test_cli_calibrates_the_circuits_of_a_network(tmp_path) -> None:
    import subprocess
    import sys

    snncomp.ir.save(_net(), tmp_path / "net.json")
    out = tmp_path / "cal.json"
    args = ["bss2-calibrate", str(tmp_path / "net.json"), "-o", str(out), "--rounds", "1", "--repeats", "1"]
    r = subprocess.run(
        [sys.executable, "-m", "snncomp", *args, "--chip-seed", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "cal: 4 circuits to calibrate" in r.stdout and "gain calibration of chip_seed=2 (4 circuits" in r.stdout
    cal = GainCalibration.load(out)
    assert cal.measured.sum() == 4 and cal.chip_seed == 2
    # It is the calibration of that network's circuits on chip 2: compile accepts it there.
    mock = MockConfig.realistic()
    exe = snncomp.compile(_net(), target="bss2-mock", t_max=0.03, mock=mock, chip_seed=2, calibration=cal)
    assert "not covered" not in str(exe.report())


def test_scan_levels_are_even_and_the_count_finds_the_crossing() -> None:
    from snncomp.targets.bss2.mock._calibrate import _critical, _scan

    for s_nom in (100, 196, 233, 280):  # spacings 1, 2 and 3 all occur
        for lo, hi, n in ((0.7, 1.45, 80), (0.88, 1.14, 48), (0.65, 1.45, 96)):
            levels = _scan(lo * s_nom, hi * s_nom, n)
            assert len(set(np.diff(levels))) == 1 and levels[0] <= lo * s_nom and levels[-1] >= hi * s_nom
    levels = _scan(90, 150, 25)
    step = float(levels[1] - levels[0])
    rng = np.random.default_rng(0)
    crossing = rng.uniform(100, 140, 50)
    # Noisy response, 16 repeats: the count of silent levels is an unbiased estimate of the crossing.
    noisy = levels[None, :, None] + rng.normal(0, step, (16, len(levels), 50)) >= crossing
    est = _critical(noisy.reshape(16 * len(levels), 50), levels, 16, True)
    assert np.max(np.abs(est - crossing)) < step
    assert abs(np.mean(est - crossing)) < 0.2 * step
    # Falling (inhibitory): fires below the crossing.
    est_i = _critical((levels[:, None] < crossing[None, :]), levels, 1, False)
    assert np.max(np.abs(est_i - crossing)) <= step / 2 + 1e-9
    with pytest.raises(TargetError, match="evenly spaced"):
        _critical(np.zeros((3, 2), bool), np.array([1, 2, 4]), 1, True)


def test_a_changed_mismatch_model_or_other_taus_are_caught(realistic: GainCalibration) -> None:
    import dataclasses

    stale = dataclasses.replace(realistic, fingerprint="0" * 16)
    with pytest.raises(TargetError, match="mismatch draw differs"):
        _small(calibration=stale)
    net = snncomp.Network("slow")
    x = net.input("x", 5)
    h = net.lif("h", 4, tau_mem=20e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=np.full((5, 4), 1.0))
    exe = _small(net, calibration=realistic)
    assert "population 'h' has tau_mem=0.02" in str(exe.report())
