"""ChipSpec defaults against BSS2_SPEC.md, driver allocation, the CLI command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from snncomp.cli import main
from snncomp.targets.bss2 import ChipSpec, HardwareConfig
from snncomp.targets.bss2._drivers import allocate_drivers

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_real_chip() -> None:
    chip = ChipSpec()
    assert (chip.circuits, chip.hemispheres, chip.columns) == (512, 2, 256)
    assert (chip.rows_per_hemisphere, chip.synapses) == (256, 131072)
    assert (chip.drivers_per_hemisphere, chip.rows_per_driver, chip.buses, chip.drivers_per_bus) == (128, 2, 8, 32)
    assert chip.rows_per_bus == 64
    assert (chip.weight_max, chip.labels, chip.row_select_bits) == (63, 64, 5)
    assert (chip.event_outputs, chip.columns_per_event_output) == (8, 32)
    assert (chip.fpga_input_channels, chip.background_generators, chip.madc_neurons) == (4, 8, 1)
    assert chip.timestamp == pytest.approx(8e-9)
    assert chip.max_runtime == pytest.approx(34.36, rel=1e-3)
    assert chip.speedup == 1000 and chip.default_weight_scale == 58
    assert chip.tau_mem_range == (0.5e-6, 60e-6) and chip.v_threshold_range == (50, 220)
    assert chip.refractory_range == (40e-9, 32e-6)


def test_crossbar_table_is_spec_1_5() -> None:
    chip = ChipSpec()
    nodes = chip.crossbar_set
    for e in range(8):  # neuron event output e: bus e%4 of both hemispheres, FPGA output 8 + e%4
        assert {o for i, o in nodes if i == e} == {e % 4, e % 4 + 4, 8 + e % 4}
    for s in range(4):  # FPGA input: every PADI bus and its own loop-back
        assert {o for i, o in nodes if i == 8 + s} == set(range(8)) | {8 + s}
    for k in range(8):  # background generator k: bus k and FPGA output 8 + k%4
        assert {o for i, o in nodes if i == 12 + k} == {k, 8 + k % 4}
    assert len(nodes) == 8 * 3 + 4 * 9 + 8 * 2


def test_inconsistent_chip_is_rejected() -> None:
    with pytest.raises(ValidationError, match="event_outputs"):
        ChipSpec(columns=200)
    with pytest.raises(ValidationError, match="low"):
        ChipSpec(tau_mem_range=(1e-5, 1e-6))
    assert "non-default: speedup=500.0" in ChipSpec(speedup=500).text()


@pytest.mark.parametrize(
    "groups",
    [
        [(None, 32)],
        [(0, 28), (19, 4)],  # two on-chip groups (event outputs b and b+4) and nothing else
        [(0, 16), (19, 10), (None, 6)],
        [(None, 1)] * 12,
        [(0, 20), (None, 5), (None, 5), (None, 2)],
    ],
)
def test_driver_allocation_accepts_exactly_its_own_row_select(groups: list[tuple[int | None, int]]) -> None:
    chip = ChipSpec()
    got = allocate_drivers(chip, groups)
    assert got is not None
    rs, drivers = got
    assert len(set(rs)) == len(rs)
    used = [j for d in drivers for j, _ in d]
    assert len(used) == len(set(used)) <= 32
    for k, (fixed, need) in enumerate(groups):
        assert len(drivers[k]) == need and (fixed is None or rs[k] == fixed)
        for j, mask in drivers[k]:
            accepts = {r for r in rs if (j & mask) == (r & mask)}
            assert accepts == {rs[k]}


def test_driver_allocation_reports_impossible_requests() -> None:
    assert allocate_drivers(ChipSpec(), [(None, 20), (None, 13)]) is None  # 33 drivers > 32


def test_bss2_map_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, dot = tmp_path / "config.json", tmp_path / "chip.dot"
    assert main(["bss2-map", str(ROOT / "examples" / "yinyang.json"), "-o", str(out), "--dot", str(dot)]) == 0
    text = capsys.readouterr().out
    assert "neuron circuits" in text and "[verify-config] ok" in text
    config = HardwareConfig.load(out)
    assert json.loads(out.read_text())["config_version"] == 1 and config.network == "yinyang"
    assert dot.read_text().startswith("digraph")
