"""The ``partition`` pass and its planner: cuts, diagnostics, the partitioned artifact, reports and the CLI.

Small chips (``ChipSpec`` with 8 or 16 columns) keep the networks tiny; nothing here runs the emulator
(``tests/test_bss2_partition_exec.py`` does).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import snncomp
from snncomp import PassError, ir
from snncomp.cli import main
from snncomp.errors import PipelineError
from snncomp.passes import PassManager, format_graph, graph_to_dot
from snncomp.targets.bss2 import (
    ChipSpec,
    PartitionedConfig,
    ResourceError,
    check_config,
    format_report,
    placement_dot,
    plan_partitions,
)
from snncomp.targets.bss2.passes import Partition

PIPELINE = str(snncomp.pipeline("bss2"))
CHIP32 = ChipSpec(columns=16, event_outputs=8, columns_per_event_output=2)  # 32 neuron circuits
CHIP16 = ChipSpec(columns=8, event_outputs=8, columns_per_event_output=1)  # 16 neuron circuits
LIF = {"tau_mem": 10e-3, "tau_syn": 5e-3, "max_spikes": 1}


def with_partitions(n: int, **more: object) -> str:
    opts = ",".join(f"{k}={v}" for k, v in {"max_partitions": n, **more}.items())
    return PIPELINE.replace("partition,", f"partition{{{opts}}},")


def cause(exc: PassError) -> BaseException:
    assert exc.__cause__ is not None
    return exc.__cause__


def slots(net: ir.Network) -> dict[str, np.ndarray]:
    """Fan-in in synapse slots under split-sign{signs=both}: two per synapse."""
    out = {}
    for node in net.nodes:
        f = np.zeros(node.size, np.int64)
        for e in net.edges:
            if e.target == node.name:
                f += 2 * (np.ones(e.weight.shape, np.int64) if e.mask is None else e.mask.astype(np.int64)).sum(0)
        out[node.name] = f
    return out


def chain(sizes: list[int], n_in: int = 4, seed: int = 0, recurrent: tuple[int, ...] = ()) -> ir.Network:
    """x -> p0 -> p1 -> ...; populations listed in ``recurrent`` also project onto themselves."""
    rng = np.random.default_rng(seed)
    net = snncomp.Network(f"chain{seed}")
    prev = net.input("x", n_in)
    for i, n in enumerate(sizes):
        pop = net.lif(f"p{i}", n, **LIF)
        net.connect(prev, pop, weight=rng.uniform(0.2, 0.9, (prev.size, n)))
        if i in recurrent:
            net.connect(pop, pop, weight=rng.uniform(-0.2, 0.2, (n, n)))
        prev = pop
    return net.build()


def yinyang(hidden: int, n_in: int = 4, fan: int | None = None) -> ir.Network:
    rng = np.random.default_rng(1)
    net = snncomp.Network(f"yy{hidden}")
    x = net.input("x", n_in)
    h = net.lif("h", hidden, **LIF)
    o = net.lif("o", 3, **LIF)
    net.connect(x, h, weight=rng.uniform(0.3, 1.0, (n_in, hidden)))
    mask = None if fan is None else np.stack([rng.permutation(hidden) < fan for _ in range(3)], axis=1)
    net.connect(h, o, weight=rng.uniform(-0.5, 0.5, (hidden, 3)), mask=mask)
    return net.build()


# -- the pass in the pipeline ------------------------------------------------------------------------------------


def test_pipeline_has_partition_before_place_and_a_fitting_network_is_left_as_it_was() -> None:
    assert "quantize,partition,place" in PIPELINE
    net = yinyang(20)
    plain = PassManager(PIPELINE.replace("partition,", "")).run(net, {"chip": CHIP32})
    parted = PassManager(with_partitions(4)).run(net, {"chip": CHIP32})
    assert "partitioned" not in parted.annotations
    assert format_graph(parted.graph) == format_graph(plain.graph)
    assert parted.annotations["hardware_config"] == plain.annotations["hardware_config"]


def test_a_network_too_large_is_refused_by_default_with_the_partitions_it_needs() -> None:
    with pytest.raises(PassError, match="pass 'partition' failed") as info:
        PassManager(PIPELINE).run(yinyang(40), {"chip": CHIP32})
    err = cause(info.value)
    assert isinstance(err, ResourceError)
    (v,) = err.violations
    assert (v.resource, v.demand, v.limit, v.check) == ("neuron circuits", 43, 32, 1)
    assert "h (40 neurons)" in str(err) and "o (3 neurons)" in str(err)
    assert "max_partitions=2" in v.hint


def test_a_partitioned_pipeline_lowers_every_partition_and_saves_one_artifact(tmp_path: Path) -> None:
    result = PassManager(with_partitions(3)).run(yinyang(40), {"chip": CHIP32})
    config = result.annotations["partitioned"]
    assert isinstance(config, PartitionedConfig) and "hardware_config" not in result.annotations
    assert len(config.parts) == 2 and config.mode == "sequential" and config.inter_chip_latency == 0
    for part in config.parts:
        assert part.chip == CHIP32
        assert check_config(part) == []
        assert sum(n.width for n in part.neurons) <= CHIP32.circuits
    # every IR neuron is configured in exactly one partition, under its slice's name and index
    placed = {
        (s.population, s.start + n.index)
        for s in config.slices
        for n in config.parts[s.part].neurons
        if n.population == s.name
    }
    assert placed == {(p, i) for p, size in (("h", 40), ("o", 3)) for i in range(size)}
    config.save(tmp_path / "c.json")
    back = PartitionedConfig.load(tmp_path / "c.json")
    assert back == config and back.model_dump_json() == config.model_dump_json()
    report = format_report(result)
    assert "partition 0:" in report and "partition 1:" in report and report.count("neuron circuits") == 2
    (cut,) = config.cuts
    assert f"{cut.name} = h[{cut.start}-{cut.stop - 1}]: partition 0 -> 1" in report
    dot = placement_dot(config)
    assert 'subgraph "cluster_chip_part0"' in dot and 'subgraph "cluster_chip_part1"' in dot
    assert '"chip_part0" -> "chip_part1"' in dot and "cluster_chip_p1_h0" in dot
    assert 'subgraph "cluster_chip_part1"' in graph_to_dot(result.graph)  # the target's picture hook


def test_partition_options_are_checked() -> None:
    with pytest.raises(ResourceError, match="max_partitions: must be an integer >= 1, got 0"):
        Partition(max_partitions=0)
    with pytest.raises(ResourceError, match="inter_chip_latency: must be a finite number >= 0"):
        Partition(inter_chip_latency=-1.0)
    with pytest.raises(PipelineError, match="must be one of fewest-partitions, fewest-cut-synapses"):
        PassManager(PIPELINE.replace("partition,", "partition{objective=smallest},"))


# -- the planner ---------------------------------------------------------------------------------------------------


def test_a_feed_forward_population_is_split_by_neurons_each_part_with_its_whole_fan_in() -> None:
    net = yinyang(40)
    plan = plan_partitions(net, slots(net), CHIP32, max_partitions=3)
    assert plan.n_parts == 2 and all(c <= 32 for c in plan.circuits)
    h = [s for s in plan.slices if s.population == "h"]
    # the fewest cut synapses among two partitions: as few of h as possible recorded and replayed (43 - 32)
    assert len(h) == 2 and sorted((s.start, s.stop) for s in h) == [(0, 11), (11, 40)]
    for s in h:
        (into,) = [q for q in plan.pieces if q.target == s.name]
        assert into.projection == "x->h" and into.rows == (0, 4) and into.cols == (s.start, s.stop)
    # the cut: h[0-31], recorded in partition 0, is an input population of partition 1
    (cut,) = plan.cuts
    part1 = plan.parts[1]
    assert (cut.source_part, cut.target_part, cut.population) == (0, 1, "h")
    assert next(n for n in part1.nodes if n.name == cut.name).kind == "input"
    assert cut.synapses == 11 * 3 == plan.cut_synapses
    # the pieces tile every projection: the partitions put together are the network again
    assert plan.join(plan.parts) == net


def test_a_recurrent_subnetwork_stays_whole_and_one_larger_than_a_chip_is_named() -> None:
    net = chain([10, 12, 10], recurrent=(1,))
    for objective in ("fewest-partitions", "fewest-cut-synapses"):
        plan = plan_partitions(net, slots(net), CHIP16, max_partitions=4, objective=objective)
        assert [(s.start, s.stop) for s in plan.slices if s.population == "p1"] == [(0, 12)]
        assert plan.join(plan.parts) == net
    big = chain([6, 20, 6], recurrent=(1,))
    with pytest.raises(ResourceError) as info:
        plan_partitions(big, slots(big), CHIP16, max_partitions=8)
    rec = [v for v in info.value.violations if "recurrent" in v.resource]
    assert [(v.resource, v.demand, v.limit) for v in rec] == [
        ("neuron circuits of the recurrent subnetwork {p1}", 20, 16)
    ]
    assert "p1 (20 neurons)" in str(info.value) and "cannot be cut" in str(info.value)


def test_a_neuron_whose_fan_in_exceeds_a_chip_is_named() -> None:
    tiny_rows = ChipSpec(
        columns=8, event_outputs=8, columns_per_event_output=1, rows_per_hemisphere=16, drivers_per_hemisphere=8
    )
    net = yinyang(12, n_in=40)
    with pytest.raises(ResourceError) as info:
        plan_partitions(net, slots(net), tiny_rows, max_partitions=8)
    (fan,) = [v for v in info.value.violations if v.resource.startswith("synapses into neuron")]
    assert (fan.resource, fan.demand, fan.limit, fan.responsible) == ("synapses into neuron h[0-11]", 80, 64, ("x",))
    assert "no cut helps" in fan.hint


def test_partition_and_chip_limits_are_diagnosed() -> None:
    net = chain([14, 14, 14])
    with pytest.raises(ResourceError) as info:
        plan_partitions(net, slots(net), CHIP16, max_partitions=2)
    assert [(v.resource, v.demand, v.limit) for v in info.value.violations] == [("partitions", 3, 2)]
    with pytest.raises(ResourceError) as info:
        plan_partitions(net, slots(net), CHIP16, max_partitions=4, chips=2)
    assert [(v.resource, v.demand, v.limit) for v in info.value.violations] == [("emulated chips", 3, 2)]


def _brute_force(net: ir.Network, plan_units: list[tuple[str, int]], limit: int) -> dict[int, int]:
    """Fewest cut synapses for each partition count, over every contiguous cut of the neurons in order."""
    index = {u: k for k, u in enumerate(plan_units)}
    n = len(plan_units)
    best: dict[int, int] = {}
    for cuts in itertools.product((False, True), repeat=n - 1):
        bounds = [0, *[i + 1 for i, c in enumerate(cuts) if c], n]
        if any(b - a > limit for a, b in itertools.pairwise(bounds)):
            continue
        part = np.searchsorted(bounds, np.arange(n), side="right")
        cut = 0
        for e in net.edges:
            if e.source == "x":
                continue
            m = np.ones(e.weight.shape, bool) if e.mask is None else e.mask
            for i, j in zip(*np.nonzero(m)):
                cut += part[index[(e.source, int(i))]] != part[index[(e.target, int(j))]]
        k = len(bounds) - 1
        best[k] = min(best.get(k, cut), cut)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_both_objectives_are_optimal_over_cuts_of_the_topological_order(seed: int) -> None:
    """Against brute force over every contiguous cut (13 neurons: 4096 cuts) on an 8-circuit chip."""
    chip8 = ChipSpec(columns=4, event_outputs=4, columns_per_event_output=1)
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.multinomial(13 - 9, [1 / 3] * 3) + 3]
    net = snncomp.Network(f"r{seed}")
    x = net.input("x", 2)
    pops = [net.lif(f"p{i}", n, **LIF) for i, n in enumerate(sizes)]
    net.connect(x, pops[0], weight=0.5)
    for a, b in ((0, 1), (1, 2), (0, 2)):
        mask = rng.random((sizes[a], sizes[b])) < 0.4
        net.connect(pops[a], pops[b], weight=0.5, mask=mask)
    built = net.build()
    units = [(f"p{i}", j) for i, n in enumerate(sizes) for j in range(n)]
    truth = _brute_force(built, units, chip8.circuits)
    fewest = min(truth)
    plan = plan_partitions(built, slots(built), chip8, max_partitions=5, objective="fewest-partitions")
    assert (plan.n_parts, plan.cut_synapses) == (fewest, truth[fewest])
    plan = plan_partitions(built, slots(built), chip8, max_partitions=5, objective="fewest-cut-synapses")
    allowed = {k: c for k, c in truth.items() if k <= 5}
    best = min(allowed.values())
    assert plan.cut_synapses == best and plan.n_parts == min(k for k, c in allowed.items() if c == best)
    assert plan.join(plan.parts) == built


# -- the command line ----------------------------------------------------------------------------------------------


def test_bss2_map_and_compile_show_the_partitions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = yinyang(600, fan=100)  # 603 neurons: more than one chip's 512 circuits
    path = tmp_path / "net.json"
    ir.save(net, path)
    assert main(["bss2-map", str(path)]) == 2
    assert "neuron circuits: demand 603 > limit 512" in capsys.readouterr().err
    out_json, dot = tmp_path / "parts.json", tmp_path / "parts.dot"
    assert main(["bss2-map", str(path), "--max-partitions", "2", "-o", str(out_json), "--dot", str(dot)]) == 0
    out = capsys.readouterr().out
    assert "BrainScaleS-2 partitions for @yy600: 2 on one chip" in out
    (cut,) = PartitionedConfig.load(out_json).cuts
    assert f"h.0 = h[0-{cut.stop - 1}]: partition 0 -> 1; {cut.synapses} synapses of h->o" in out
    assert cut.synapses == int(net.edges[1].mask[: cut.stop].sum())
    assert "cluster_chip_part1" in dot.read_text()
    passes = PIPELINE.replace("partition,", "partition{max_partitions=2},")
    assert main(["compile", str(path), "--target", "bss2", "--passes", passes, "-q", "-o", str(out_json)]) == 0
    assert f"-- partition 1: h[{cut.stop}-599] as h.1, o" in capsys.readouterr().out
    assert len(PartitionedConfig.load(out_json).parts) == 2


def test_inspect_shows_the_targets_partitions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "net.json"
    ir.save(yinyang(600, fan=100), path)
    assert main(["inspect", str(path), "--target", "bss2", "--option", "max_partitions=2"]) == 0
    out = capsys.readouterr().out
    assert "network 'yy600': populations" in out  # the generic tables, then the target's report
    assert "BrainScaleS-2 partitions for @yy600: 2 on one chip" in out
    assert main(["inspect", str(path), "--option", "max_partitions=2"]) == 2
    assert "--option sets a pass option of --target's pipeline" in capsys.readouterr().err
    assert main(["inspect", str(path), "--target", "bss2", "--option", "max_partitions"]) == 2
    assert "--option takes KEY=VALUE" in capsys.readouterr().err


def test_skew_is_found_where_inputs_crossed_different_numbers_of_chips() -> None:
    layers = chain([16, 16, 16])  # one layer per chip, cut between layers: inputs crossed alike
    plan = plan_partitions(layers, slots(layers), CHIP16, max_partitions=4)
    assert plan.n_parts == 3 and plan.skewed() == {}
    wide = yinyang(40)  # h split over two partitions, o reads both halves
    plan = plan_partitions(wide, slots(wide), CHIP32, max_partitions=3)
    assert plan.skewed() == {"o": (0, 1)}
