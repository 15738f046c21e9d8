"""Passes and the pass manager: golden text per pass, properties over random networks."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from helpers import GOLDEN_DIR, check_golden
from hypothesis import given
from strategies import networks

import snncomp
from snncomp import PassError, PipelineError, ir, passes

GOLDEN = GOLDEN_DIR / "passes"
SEPARATOR = "// -----"
JAX = "verify,infer-shapes,canonicalize,analyze-structure,schedule"


def _w(rows: int, cols: int, scale: float = 0.1, offset: float = 0.0) -> np.ndarray:
    return offset + scale * np.arange(rows * cols, dtype=np.float64).reshape(rows, cols) / (rows * cols)


def feedforward() -> ir.Network:
    net = snncomp.Network("feedforward")
    x = net.input("x", 3)
    h = net.lif("h", 4, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=_w(3, 4, 2.0))
    net.connect(h, o, weight=_w(4, 2, 1.0, -0.2), delay=1e-3)
    return net.build()


def recurrent() -> ir.Network:
    net = snncomp.Network("recurrent")
    x = net.input("x", 2)
    a = net.lif("a", 3, tau_mem=20e-3, tau_syn=5e-3, t_refrac=2e-3, max_spikes=4)
    b = net.lif("b", 3, tau_mem=20e-3, tau_syn=5e-3, max_spikes=4)
    o = net.li("o", 2, tau_mem=20e-3, tau_syn=5e-3)
    net.connect(x, a, weight=_w(2, 3, 3.0))
    net.connect(a, b, weight=_w(3, 3, 1.0), delay=5e-4)
    net.connect(b, a, weight=-_w(3, 3, 0.5), delay=5e-4)
    net.connect(b, b, weight=_w(3, 3, 0.2), mask=np.eye(3, dtype=bool))
    net.connect(b, o, weight=_w(3, 2, 1.0))
    return net.build()


def dead_nodes() -> ir.Network:
    net = snncomp.Network("dead")
    x = net.input("x", 2)
    unused = net.input("unused", 1)
    h = net.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    side = net.lif("side", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=_w(2, 3, 1.0))
    net.connect(h, o, weight=_w(3, 2, 1.0))
    net.connect(h, side, weight=_w(3, 2, 1.0))
    net.connect(unused, side, weight=1.0)
    net.output(o)
    return net.build()


def parallel() -> ir.Network:
    net = snncomp.Network("parallel")
    x = net.input("x", 2)
    h = net.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=_w(2, 3, 1.0))
    net.connect(x, h, weight=_w(2, 3, 0.5, 0.25), mask=np.array([[1, 0, 1], [0, 1, 0]]))
    net.connect(x, h, weight=_w(2, 3, 1.0), delay=2e-3)
    net.connect(x, h, weight=np.zeros((2, 3)), delay=1e-3, name="zero")
    return net.build()


def unbounded() -> ir.Network:
    net = snncomp.Network("unbounded")
    x = net.input("x", 2)
    h = net.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=1.0)
    return net.build()


VALID_CASES = {"feedforward": feedforward, "recurrent": recurrent, "dead": dead_nodes, "parallel": parallel}
INVALID_CASES = {
    "bad-auto-bound": (
        unbounded,
        "verify,infer-shapes,canonicalize,analyze-structure,schedule{auto_spikes_per_neuron=0}",
    ),
    "missing-requirement": (feedforward, "verify,schedule"),
    "unknown-pass": (feedforward, "verify,canonicalise"),
    "unknown-option": (feedforward, "verify,analyze-structure,schedule{spikes=3}"),
}


def _stage_text(net: ir.Network, pipeline: str) -> str:
    out: list[str] = []
    passes.PassManager(pipeline, print_after_all=out.append).run(net)
    return f"\n{SEPARATOR}\n".join(t.rstrip("\n") for t in out) + "\n"


@pytest.mark.parametrize("case", sorted(VALID_CASES))
def test_golden_stages(case: str, update_golden: bool) -> None:
    net = VALID_CASES[case]()
    input_file = GOLDEN / f"{case}.json"
    if update_golden or not input_file.exists():
        ir.save(net, input_file)
    assert ir.load(input_file) == net, f"{input_file} is stale; run pytest --update-golden"
    check_golden(GOLDEN / f"{case}.pipeline.txt", JAX + "\n", update_golden)
    check_golden(GOLDEN / f"{case}.expected.txt", _stage_text(net, JAX), update_golden)


@pytest.mark.parametrize("case", sorted(INVALID_CASES))
def test_golden_diagnostics(case: str, update_golden: bool) -> None:
    build, pipeline = INVALID_CASES[case]
    with pytest.raises((PassError, PipelineError)) as info:
        passes.PassManager(pipeline).run(build())
    check_golden(GOLDEN / f"{case}.error.txt", f"{pipeline}\n{info.value}\n", update_golden)


def test_failing_pass_names_itself_and_predecessors() -> None:
    with pytest.raises(PassError) as info:
        passes.PassManager(JAX.replace("schedule", "schedule{spikes_per_neuron=0}")).run(unbounded())
    msg = str(info.value)
    assert "pass 'schedule' failed" in msg
    assert "passes that ran before it: verify, infer-shapes, canonicalize, analyze-structure" in msg
    assert "spikes_per_neuron=0}: must be >= 1" in msg


def test_unbounded_buffers_are_sized_automatically() -> None:
    result = passes.PassManager(JAX).run(unbounded())
    assert result.annotations["schedule"].buffers == {"h": 3 * 8}
    assert result.graph.nodes["h"]["ann"]["buffer_auto"] is True
    assert any("sized automatically: 8 spikes per neuron" in str(r) for r in result.remarks)
    explicit = passes.PassManager(JAX.replace("schedule", "schedule{spikes_per_neuron=5}")).run(unbounded())
    assert explicit.annotations["schedule"].buffers == {"h": 15}
    assert "buffer_auto" not in explicit.graph.nodes["h"]["ann"]


def test_verification_after_a_broken_pass_is_caught() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class DropStage(passes.Pass):
        name = "drop-stage-for-test"

        def run(self, graph: nx.MultiDiGraph, ctx: passes.PassContext) -> nx.MultiDiGraph:
            g = graph.copy()
            sched = g.graph["ann"]["schedule"]
            passes.annotate_graph(g, schedule=sched.model_copy(update={"stages": sched.stages[:-1]}))
            return g

    pipeline = [*passes.parse_pipeline(JAX), DropStage()]
    with pytest.raises(PassError, match=r"verification failed after pass 'drop-stage-for-test'.*in no stage"):
        passes.PassManager(pipeline).run(feedforward())
    passes.PassManager(pipeline, verify_each=False).run(feedforward())  # can be turned off


def test_pipeline_strings() -> None:
    text = "verify,canonicalize,analyze-structure,schedule{spikes_per_neuron=3,strategy=event-queue}"
    parsed = passes.parse_pipeline(text)
    assert passes.format_pipeline(parsed) == text
    assert parsed[-1].spikes_per_neuron == 3 and parsed[-1].strategy == "event-queue"
    with pytest.raises(PipelineError, match="Did you mean 'canonicalize'"):
        passes.parse_pipeline("canonicalise")
    with pytest.raises(PipelineError, match="must be one of auto, event-queue"):
        passes.parse_pipeline("schedule{strategy=fast}")
    with pytest.raises(PipelineError, match="expected int"):
        passes.parse_pipeline("schedule{spikes_per_neuron=many}")
    with pytest.raises(PipelineError, match="cannot parse pipeline"):
        passes.parse_pipeline("verify,,")
    assert str(snncomp.pipeline("jax")) == JAX
    assert str(snncomp.pipeline("jax", spikes_per_neuron=2)).endswith("schedule{spikes_per_neuron=2}")


def test_registry_is_alphabetical_and_complete() -> None:
    names = list(passes.registry())
    assert names == sorted(names)
    for n in ("verify", "infer-shapes", "canonicalize", "analyze-structure", "schedule"):
        assert n in names


# -- properties over random networks ----------------------------------------------------------


@given(networks())
def test_ir_graph_ir_is_lossless(net: ir.Network) -> None:
    assert passes.from_graph(passes.to_graph(net)) == net


@given(networks())
def test_every_pass_keeps_graph_valid_and_input_untouched(net: ir.Network) -> None:
    g = passes.to_graph(net)
    ctx = passes.PassContext()
    for p in passes.parse_pipeline(JAX + "{spikes_per_neuron=2}"):
        before = passes.format_graph(g)
        out = p.run(g, ctx)
        assert passes.format_graph(g) == before, f"pass {p.name} mutated its input"
        passes.verify_graph(out)
        g = out


def _pair_sums(net: ir.Network) -> dict[tuple[str, str, float], np.ndarray]:
    sums: dict[tuple[str, str, float], np.ndarray] = defaultdict(lambda: 0.0)
    for e in net.edges:
        sums[(e.source, e.target, e.delay)] = sums[(e.source, e.target, e.delay)] + e.effective_weight().astype(
            np.float64
        )
    return sums


@given(networks())
def test_canonicalize_is_idempotent_and_keeps_function(net: ir.Network) -> None:
    once = passes.Pipeline("canonicalize").run(net).network
    twice = passes.Pipeline("canonicalize").run(once).network
    assert once == twice
    before, after = _pair_sums(net), _pair_sums(once)
    alive = {n.name for n in once.nodes}
    for (s, t, d), w in before.items():
        if s in alive and t in alive:
            np.testing.assert_allclose(after.get((s, t, d), 0.0), w, rtol=1e-6, atol=1e-6)
    assert once.output_names() == net.output_names()
    # No parallel projections with equal delay, no all-zero projections remain.
    triples = [(e.source, e.target, e.delay) for e in once.edges]
    assert len(triples) == len(set(triples))
    assert all(np.any(e.effective_weight()) for e in once.edges)


@given(networks())
def test_schedule_covers_every_population_once_in_dependency_order(net: ir.Network) -> None:
    result = snncomp.pipeline("jax", spikes_per_neuron=3).run(net)
    sched: passes.Schedule = result.annotations["schedule"]
    compiled = result.network
    listed = [p for s in sched.stages for p in s.populations]
    assert sorted(listed) == sorted(n.name for n in compiled.nodes if n.kind != "input")
    stage_of = {p: s.index for s in sched.stages for p in s.populations}
    for e in compiled.edges:
        if e.source in stage_of:
            assert stage_of[e.source] <= stage_of[e.target]
            if stage_of[e.source] == stage_of[e.target]:
                assert sched.stages[stage_of[e.target]].strategy == "event-queue"
    for s in sched.stages:
        if s.strategy == "layer-parallel":
            for p in s.populations:
                node = compiled.node(p)
                assert node.kind == "li" or node.max_spikes == 1
    for n in compiled.nodes:
        if n.kind == "lif":
            assert sched.buffers[n.name] == n.size * (n.max_spikes or 3)


@given(networks(feedforward=True, kinds=("lif",), max_spikes=False))
def test_forced_event_queue_schedule(net: ir.Network) -> None:
    result = snncomp.pipeline("jax", strategy="event-queue", spikes_per_neuron=1).run(net)
    assert all(s.strategy == "event-queue" for s in result.annotations["schedule"].stages)


def test_structure_of_recurrent_case() -> None:
    result = snncomp.pipeline("jax").run(recurrent())
    st = result.annotations["structure"]
    assert not st.feedforward
    assert ("a", "b") in st.sccs
    assert set(st.recurrent_edges) == {"a->b", "b->a", "b->b"}
    assert [s.strategy for s in result.annotations["schedule"].stages] == ["event-queue", "layer-parallel"]
    a = result.graph.nodes["a"]["ann"]
    assert a["fan_in"] == 2 * 3 + 3 * 3 and a["fan_out"] == 3 * 3


def test_dead_and_parallel_cases() -> None:
    dead = snncomp.pipeline("jax").run(dead_nodes())
    assert [n.name for n in dead.network.nodes] == ["x", "unused", "h", "o"]
    assert any("dropped population 'side'" in str(r) for r in dead.remarks)
    par = snncomp.pipeline("jax").run(parallel()).network
    assert len(par.edges) == 2
    merged = next(e for e in par.edges if e.delay == 0.0)
    expected = _w(2, 3, 1.0) + np.where(np.array([[1, 0, 1], [0, 1, 0]], bool), _w(2, 3, 0.5, 0.25), 0.0)
    np.testing.assert_array_equal(merged.weight, expected)
    assert merged.mask is None


def test_dot_export() -> None:
    dot = passes.graph_to_dot(snncomp.pipeline("jax").run(recurrent()).graph)
    assert dot.startswith('digraph "recurrent"')
    assert '"a" [label="a\\nlif[3]\\nevent-queue"];' in dot
    assert '"b" -> "a"' in dot and "style=dashed" in dot  # recurrent edge drawn dashed
    assert '"x" -> "a" [label="6 syn' in dot


def test_json_dump_of_a_stage() -> None:
    doc = json.loads(passes.graph_to_json(snncomp.pipeline("jax").run(recurrent()).graph))
    assert ir.from_dict(doc["network"]).name == "recurrent"
    assert doc["annotations"]["graph"]["schedule"]["buffers"] == {"a": 12, "b": 12}
    assert doc["annotations"]["nodes"]["a"]["schedule"] == "event-queue"


def test_stage_dumps_to_directory(tmp_path: Path) -> None:
    passes.PassManager(JAX, dump_dir=tmp_path).run(feedforward())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "00-input.txt" in names and "05-schedule.dot" in names and "03-canonicalize.json" in names


def test_passes_can_continue_on_a_lowered_graph() -> None:
    first = passes.PassManager("verify,analyze-structure").run(recurrent())
    with pytest.raises(PassError, match="requires structure"):
        passes.PassManager("schedule")
    result = passes.PassManager("schedule", assume_ensured=first.graph.graph["ensured"]).run(first.graph)
    assert "schedule" in result.annotations
