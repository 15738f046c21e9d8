"""Partitions that place and route, not just fit by count: wide hidden layers beyond one chip.

A plan counts circuits and synapse slots; whether a partition then places (adjacent circuits for a
multi-circuit neuron) and routes (256 rows per circuit, 64 through each PADI bus) is decided by
``place`` and ``route``. These tests lower networks on the full-size chip (no emulator) whose plans
needed each of the fixes: ``max_circuits_per_neuron`` reaching the planner, multi-circuit neurons
placed before the sources that fragment the columns, every neuron's slots spread evenly over its
circuits, and re-planning with slack when a partition does not lower.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import snncomp
from snncomp import ir
from snncomp.cli import main
from snncomp.passes import PassManager, node_annotations
from snncomp.targets.bss2 import PartitionedConfig, ResourceError, plan_partitions
from snncomp.targets.bss2.errors import WeightSaturationWarning

LIF = {"tau_mem": 10e-3, "tau_syn": 5e-3, "max_spikes": 1}


def wide(hidden: int, n_in: int = 25, seed: int = 0) -> ir.Network:
    """``n_in -> hidden -> 3``, dense, weights of both signs (two synapse slots each, split-sign{both})."""
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"wide{hidden}")
    x = net.input("x", n_in)
    h = net.lif("h", hidden, **LIF)
    o = net.lif("o", 3, **LIF)
    net.connect(x, h, weight=rng.uniform(-1.0, 1.0, (n_in, hidden)))
    net.connect(h, o, weight=rng.uniform(-0.1, 0.1, (hidden, 3)))
    return net.build()


def lower(net: ir.Network, **options: object) -> snncomp.passes.CompileResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightSaturationWarning)
        return PassManager(snncomp.pipeline("bss2", **options)).run(net)


def partitioned(result: snncomp.passes.CompileResult) -> PartitionedConfig:
    config = result.annotations.get("partitioned")
    assert isinstance(config, PartitionedConfig)
    return config


def test_max_circuits_per_neuron_reaches_the_planner() -> None:
    net = wide(700)  # every output neuron: 1400 slots, 6 circuits of 256 rows
    with pytest.raises(snncomp.PassError) as info:
        lower(net, max_partitions=3)  # at most 4 circuits per neuron (place's default): 1024 slots
    fan = [v for v in info.value.__cause__.violations if v.resource.startswith("synapses into neuron")]
    assert [(v.demand, v.limit) for v in fan] == [(1400, 1024)]
    config = partitioned(lower(net, max_partitions=3, max_circuits_per_neuron=8))
    assert len(config.parts) == 2
    widths = {n.width for n in config.parts[-1].neurons if n.population == "o"}
    assert len(widths) == 1 and 6 <= widths.pop() <= 8  # ceil(1400 / 256), or more after a re-plan


def test_multi_circuit_sinks_find_adjacent_circuits_between_scattered_sources() -> None:
    # The whole chip: 494 hidden neurons, each a source placed by bus balance (the first free column of
    # a block), and 3 output neurons of 6 circuits each (2 x (206 + 494) = 1400 slots), fed by 206
    # external sources and the hidden layer: 494 + 18 = 512 circuits. Placing the outputs after the
    # hidden layer left no 6 adjacent free circuits (this is the second partition of 25 -> 700 -> 3).
    rng = np.random.default_rng(3)
    net = snncomp.Network("scattered")
    x = net.input("x", 25)
    s = net.input("s", 206)
    h = net.lif("h", 494, **LIF)
    o = net.lif("o", 3, **LIF)
    net.connect(x, h, weight=rng.uniform(-1.0, 1.0, (25, 494)))
    net.connect(s, o, weight=rng.uniform(-0.1, 0.1, (206, 3)))
    net.connect(h, o, weight=rng.uniform(-0.1, 0.1, (494, 3)))
    passes = list(snncomp.pipeline("bss2", max_circuits_per_neuron=8))
    upto = [p.name for p in passes].index("place") + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightSaturationWarning)
        graph = PassManager(passes[:upto]).run(net.build()).graph
    placed = {p: a["placement"] for p, a in node_annotations(graph).items() if "placement" in a}
    assert placed["o"].width == 6
    used = [cell for p in placed.values() for cell in p.circuits()]
    assert len(set(used)) == len(used) == 512  # every circuit, none shared


def test_every_neurons_slots_are_spread_evenly_over_its_circuits() -> None:
    # 2 x (31 + 100) = 262 slots into each output neuron: 2 circuits. Its slots come in several groups
    # (the external inputs, and the hidden neurons of each event output, per sign), several of odd size;
    # each group taking turns from the first circuit piled the odd ones onto it.
    rng = np.random.default_rng(5)
    net = snncomp.Network("spread")
    x = net.input("x", 31)
    h = net.lif("h", 100, **LIF)
    o = net.lif("o", 3, **LIF)
    net.connect(x, h, weight=rng.uniform(-1.0, 1.0, (31, 100)))
    net.connect(x, o, weight=rng.uniform(-0.1, 0.1, (31, 3)))
    net.connect(h, o, weight=rng.uniform(-0.1, 0.1, (100, 3)))
    config = lower(net.build()).annotations["hardware_config"]
    outs = [n for n in config.neurons if n.population == "o"]
    counts: dict[tuple[int, int], int] = {}
    for proj in config.projections.values():
        if proj.target != "o":
            continue
        for hem, col in zip(proj.hemisphere, proj.column):
            counts[(hem, col)] = counts.get((hem, col), 0) + 1
    for n in outs:
        assert n.width == 2
        per = [counts.get((n.hemisphere, n.column + k), 0) for k in range(n.width)]
        assert sum(per) == 262
        assert max(per) - min(per) <= 1, per


@pytest.mark.parametrize(
    ("hidden", "circuits", "why"),
    [
        (512, 4, "rows of a PADI bus"),  # 1024 slots in 4 circuits: the partition with all 512 overflows a bus
        (760, 8, "a circuit's rows"),  # 1520 slots in 6 circuits (99 %): one more circuit each
    ],
)
def test_a_partition_that_does_not_route_is_planned_again_with_slack(hidden: int, circuits: int, why: str) -> None:
    net = wide(hidden)
    result = lower(net, max_partitions=3, max_circuits_per_neuron=circuits)
    config = partitioned(result)
    replans = [r.message for r in result.remarks if r.message.startswith("re-planned")]
    assert replans, why
    # the slack the re-plan chose is what place made: every partition's widths as its plan counted them
    chip = 512
    for part in config.parts:
        assert sum(n.width for n in part.neurons) <= chip
    if circuits == 8:
        widths = {n.width for n in config.parts[-1].neurons if n.population == "o"}
        assert len(widths) == 1 and widths.pop() > 6  # ceil(1520 / 256) = 6 left no room
        assert "rows per circuit spare (circuits per neuron: o 6 -> 7)" in replans[0]
    else:
        assert "o's partition at most" in replans[-1] and "rows per circuit spare" not in replans[-1]


def test_when_the_slack_needs_more_partitions_than_allowed_the_error_says_both() -> None:
    # 25 -> 1000 -> 3 fits 2 chips by count (1000 + 3 x 8 circuits), but the hidden neurons that share
    # a hemisphere with the output neurons add rows there: the partition with the output must be
    # smaller, which takes 3 partitions
    with pytest.raises(snncomp.PassError) as info:
        lower(wide(1000), max_partitions=2, max_circuits_per_neuron=8)
    err = info.value.__cause__
    assert isinstance(err, ResourceError)
    assert "with room to place and route it" in err.summary
    assert any(v.check in (5, 6, 8) for v in err.violations)  # what did not route
    (parts,) = [v for v in err.violations if v.resource == "partitions"]
    assert (parts.demand, parts.limit) == (3, 2)
    config = partitioned(lower(wide(1024), max_partitions=3, max_circuits_per_neuron=8))  # the fan-in limit
    assert [n.width for n in config.parts[-1].neurons if n.population == "o"] == [8, 8, 8]


def test_a_width_fixed_in_metadata_is_planned_and_kept() -> None:
    net = wide(600)
    meta = {"bss2.placement": {"h": {"circuits_per_neuron": 1}, "o": {"circuits_per_neuron": 8}}}
    net = net.replace(metadata={**net.metadata, **meta})
    fan_in = {"h": np.full(600, 50), "o": np.full(3, 1200)}
    plan = plan_partitions(net, fan_in, snncomp.targets.bss2.ChipSpec(), max_partitions=3)
    assert plan.n_parts == 2
    assert plan.parts[-1].metadata["bss2.placement"]["o"] == {"circuits_per_neuron": 8}
    config = partitioned(lower(net, max_partitions=3, max_circuits_per_neuron=8))
    assert {n.width for n in config.parts[-1].neurons if n.population == "o"} == {8}


def test_every_partition_is_lowered_with_the_running_pipelines_options() -> None:
    # split-sign{signs=used}: one slot per synapse, so 700 + 0 slots into each output neuron (3 circuits);
    # the partitions were lowered with the default pipeline (signs=both: 1400 slots, 6 circuits)
    config = partitioned(lower(wide(700), max_partitions=3, signs="used", bits=5))
    last = config.parts[-1]
    widths = {n.width for n in last.neurons if n.population == "o"}
    assert len(widths) == 1 and 3 <= widths.pop() <= 4  # ceil(700 / 256), or one more after a re-plan
    assert max(max(p.weight) for p in last.projections.values()) <= 31  # 5-bit weights


def test_bss2_map_sets_the_circuits_per_neuron_and_shows_the_re_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.json"
    ir.save(wide(700), path)
    assert main(["bss2-map", str(path), "--max-partitions", "3"]) != 0  # 4 circuits per neuron: 1024 < 1400 slots
    assert "synapses into neuron o[0-2]: demand 1400 > limit 1024" in capsys.readouterr().err
    assert main(["bss2-map", str(path), "--max-partitions", "3", "--max-circuits-per-neuron", "8"]) == 0
    out = capsys.readouterr().out
    assert "BrainScaleS-2 partitions for @wide700: 2 on one chip" in out
    assert "[partition] re-planned: partition 1 of 2" in out
