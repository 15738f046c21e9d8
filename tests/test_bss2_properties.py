"""Properties of the bss2 lowering over random networks (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import networks

import snncomp
from snncomp import PassError, ir
from snncomp.passes import PassContext, PassManager
from snncomp.targets.bss2 import ChipSpec, ConfigError, HardwareConfig, ResourceError, check_config, dequantized_network
from snncomp.targets.bss2.passes.verify_config import VerifyConfig, compare_with_intent

PIPELINE = str(snncomp.pipeline("bss2"))
# Small enough to always fit: at most 3 populations of <= 20 neurons and 2 inputs of <= 20 channels.
fitting = networks(max_size=20, max_inputs=2, max_neuron_pops=3, delays=False)


def lower(net: ir.Network, pipeline: str = PIPELINE) -> snncomp.passes.CompileResult:
    # verify_each re-validates the graph (every IR invariant) before and after every pass.
    return PassManager(pipeline, verify_each=True).run(net)


@given(fitting, st.sampled_from(["both", "used"]), st.sampled_from(["clip", "split"]))
def test_fitting_networks_route_and_verify(net: ir.Network, signs: str, saturate: str) -> None:
    pipe = PIPELINE.replace("split-sign", f"split-sign{{signs={signs}}}").replace(
        "quantize", f"quantize{{saturate={saturate}}}"
    )
    result = lower(net, pipe)
    ann = result.annotations
    config: HardwareConfig = ann["hardware_config"]
    # verify-config ran as the last pass; re-check independently of the pass object.
    problems, summary = compare_with_intent(config, result.graph)
    assert problems == [] and check_config(config) == []
    assert summary.synapses == sum(len(p.pre) for p in config.projections.values())
    # Placement respects capacity: no circuit used twice, every neuron placed.
    owner = config.circuit_owner()
    assert (owner >= 0).sum() == sum(n.width for n in config.neurons)
    assert len(config.neurons) == sum(n.size for n in result.network.nodes if n.kind != "input")
    # Lowering only annotates: the IR after the bss2 passes is the canonicalized IR.
    canonical = PassManager("canonicalize").run(net).network
    assert result.network == canonical


@given(fitting)
def test_quantization_error_is_at_most_half_a_step(net: ir.Network) -> None:
    result = lower(net, "verify,map-parameters,split-sign,quantize")
    scale = result.annotations["quantization"].scale
    deq = dequantized_network(result)
    for edge, q in zip(net.edges, deq.edges):
        w = edge.effective_weight().astype(np.float64)
        unsat = np.abs(w * scale) <= 63
        err = np.abs(q.weight - np.where(edge.mask if edge.mask is not None else True, w, 0))
        assert (err[unsat] <= 0.5 / scale + 1e-12).all()
        assert (np.abs(q.weight) <= 63 / scale + 1e-12).all()


@given(fitting, st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_corrupting_one_label_or_row_select_is_caught(net: ir.Network, seed: int) -> None:
    """The checker follows the configuration: breaking one address breaks verification."""
    result = lower(net)
    config: HardwareConfig = result.annotations["hardware_config"]
    rng = np.random.default_rng(seed)
    mapped = [(k, p) for k, p in config.projections.items() if p.pre]
    if not mapped:
        return
    what = rng.integers(3)
    if what == 0:  # flip the label of one mapped synapse
        _key, pm = mapped[rng.integers(len(mapped))]
        i = int(rng.integers(len(pm.pre)))
        h, r, c = pm.hemisphere[i], pm.row[i], pm.column[i]
        rows = list(config.rows)
        k = next(j for j, row in enumerate(rows) if (row.hemisphere, row.row) == (h, r))
        labels = bytearray(bytes.fromhex(rows[k].labels))
        labels[c] = (labels[c] + 1 + int(rng.integers(62))) % 64
        rows[k] = rows[k].model_copy(update={"labels": labels.hex()})
        bad = config.model_copy(update={"rows": tuple(rows)})
    elif what == 1:  # change the row mask of one used driver
        drivers = list(config.drivers)
        k = int(rng.integers(len(drivers)))
        drivers[k] = drivers[k].model_copy(update={"row_mask": drivers[k].row_mask ^ (1 << int(rng.integers(5)))})
        bad = config.model_copy(update={"drivers": tuple(drivers)})
    else:  # change an address_out (row select or label) of a neuron, or an external label
        if config.external and any(e.labels for e in config.external) and rng.integers(2):
            ext = list(config.external)
            k = next(j for j in rng.permutation(len(ext)) if ext[j].labels)
            lab = list(ext[k].labels)
            lab[0] ^= 1 << int(rng.integers(11))
            ext[k] = ext[k].model_copy(update={"labels": tuple(lab)})
            bad = config.model_copy(update={"external": tuple(ext)})
        else:
            neurons = list(config.neurons)
            k = int(rng.integers(len(neurons)))
            neurons[k] = neurons[k].model_copy(
                update={"address_out": neurons[k].address_out ^ (1 << int(rng.integers(8)))}
            )
            bad = config.model_copy(update={"neurons": tuple(neurons)})
    problems, _ = compare_with_intent(bad, result.graph)
    problems += check_config(bad)
    if what == 1 or what == 2:
        # A mask bit or a neuron's address may be irrelevant (e.g. a neuron that feeds nothing, or a mask bit
        # where the driver agrees with every row select on the bus); when it matters it must be caught.
        changed = _realised_weights(bad) != _realised_weights(config)
        assert not changed or problems
    else:
        assert problems


def _realised_weights(config: HardwareConfig) -> dict:
    from snncomp.targets.bss2 import realise

    r = realise(config)
    c = r.contacts
    out: dict = {}
    owner = config.circuit_owner()
    for s, h, col, sign, w in zip(c["src"], c["h"], c["c"], c["sign"], c["weight"]):
        key = (r.sources[s], owner[h, col])
        out[key] = out.get(key, 0) + (w if sign == 0 else -w)
    return {k: v for k, v in out.items() if v}


# -- networks built to exceed one limit each ----------------------------------------------------------------------


@st.composite
def over_one_limit(draw) -> tuple[str, ir.Network, str]:  # type: ignore[no-untyped-def]
    """(limit name, network, metadata) for a network that exceeds exactly the named limit."""
    kind = draw(st.sampled_from(["circuits", "hemisphere-rows", "bus-rows", "fan-in", "madc"]))
    lif = {"tau_mem": 10e-3, "tau_syn": 5e-3}
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    net = snncomp.Network(f"over_{kind.replace('-', '_')}")
    meta: dict = {}
    if kind == "circuits":
        sizes = draw(st.lists(st.integers(1, 300), min_size=2, max_size=4).filter(lambda s: sum(s) > 512))
        x = net.input("x", 2)
        for i, n in enumerate(sizes):
            net.connect(x, net.lif(f"p{i}", n, **lif), weight=rng.normal(size=(2, n)))
    elif kind == "hemisphere-rows":
        n_in = draw(st.integers(65, 120))  # 2 * n_in external rows > 128 each, two populations > 256 in one hemisphere
        x = net.input("x", n_in)
        a = net.lif("a", 4, **lif)
        b = net.lif("b", 4, **lif)
        y = net.input("y", n_in)
        net.connect(x, a, weight=rng.normal(size=(n_in, 4)))
        net.connect(y, b, weight=rng.normal(size=(n_in, 4)))
        meta["bss2.placement"] = {"a": {"hemisphere": 0}, "b": {"hemisphere": 0}}
    elif kind == "bus-rows":
        n = draw(st.integers(33, 64))  # all in event output 0 (both hemispheres): 2n > 64 rows on bus 0
        x = net.input("x", 1)
        h = net.lif("h", n, **lif)
        o = net.lif("o", 1, **lif)
        net.connect(x, h, weight=np.ones((1, n)))
        net.connect(h, o, weight=rng.normal(size=(n, 1)))
        circuits = [c for c in range(32)] + [256 + c for c in range(32)]
        meta["bss2.placement"] = {"h": {"circuits": circuits[:n]}, "o": {"circuits": [100]}}
    elif kind == "fan-in":
        n_in = draw(st.integers(129, 250))
        x = net.input("x", n_in)
        net.connect(x, net.lif("h", 1, **lif), weight=rng.normal(size=(n_in, 1)))
        meta["bss2.placement"] = {"h": {"circuits_per_neuron": 1}}
    else:
        x = net.input("x", 2)
        h = net.lif("h", 5, **lif)
        net.connect(x, h, weight=rng.normal(size=(2, 5)))
        meta["bss2.readout"] = {"madc": [["h", i] for i in range(draw(st.integers(2, 5)))]}
    built = net.build()
    return kind, built.replace(metadata=meta), kind


EXPECTED_CHECK = {"circuits": 1, "hemisphere-rows": 3, "bus-rows": 8, "fan-in": 5, "madc": 4}
EXPECTED_RESOURCE = {
    "circuits": "neuron circuits",
    "hemisphere-rows": "synapse rows in hemisphere 0",
    "bus-rows": "synapse rows on PADI bus 0 of hemisphere ",
    "fan-in": "synapses into circuit h",
    "madc": "neurons recorded by the MADC",
}


@given(over_one_limit())
@settings(max_examples=20)
def test_networks_over_one_limit_get_the_right_diagnostic(case: tuple[str, ir.Network, str]) -> None:
    kind, net, _ = case
    with pytest.raises(PassError) as info:
        lower(net)
    err = info.value.__cause__
    assert isinstance(err, ResourceError)
    checks = {v.check for v in err.violations}
    assert EXPECTED_CHECK[kind] in checks
    hit = [v for v in err.violations if v.check == EXPECTED_CHECK[kind]]
    assert any(v.resource.startswith(EXPECTED_RESOURCE[kind]) for v in hit), err
    for v in hit:
        if v.demand is not None:
            assert v.demand > v.limit
        assert v.responsible or kind == "madc" or v.check == 1
    # Unrelated limits are not blamed. Row limits come together: a hemisphere is its 4 buses, and a
    # circuit's synapses through a bus are rows of that bus.
    rows = {3, 5, 6, 8, 9}
    allowed = {EXPECTED_CHECK[kind]} | (rows if EXPECTED_CHECK[kind] in rows else set())
    assert checks <= allowed, err


def test_check_config_catches_structural_rule_breaks() -> None:
    net = snncomp.Network("tiny")
    x = net.input("x", 3)
    h = net.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=np.full((3, 3), 0.5))
    config: HardwareConfig = lower(net.build()).annotations["hardware_config"]
    assert check_config(config) == []
    from snncomp.targets.bss2.config import CrossbarNode

    cases = {
        14: config.model_copy(
            update={"crossbar": (*config.crossbar, CrossbarNode(input=0, output=1, mask=0, target=0))}
        ),
        18: config.model_copy(
            update={
                "chip": ChipSpec(fpga_input_channels=2),
                "external": tuple(e.model_copy(update={"labels": (*e.labels, 3 << 14)}) for e in config.external),
            }
        ),
        21: config.model_copy(update={"runtime": 100.0}),
        4: config.model_copy(update={"readout": config.readout.model_copy(update={"madc": (("h", 0), ("h", 1))})}),
        22: config.model_copy(
            update={"neurons": (config.neurons[0].model_copy(update={"v_threshold": 250.0}), *config.neurons[1:])}
        ),
        1: config.model_copy(
            update={
                "neurons": (config.neurons[0], config.neurons[0].model_copy(update={"index": 1}), *config.neurons[2:])
            }
        ),
        17: config.model_copy(update={"crossbar": tuple(n for n in config.crossbar if n.output < 8)}),
        20: config.model_copy(update={"background": (*config.background, config.background[0])}),
    }
    for check, bad in cases.items():
        found = {v.check for v in check_config(bad)}
        assert check in found, (check, check_config(bad))


def test_verify_config_pass_rejects_a_corrupted_config() -> None:
    net = snncomp.Network("tiny")
    x = net.input("x", 2)
    h = net.lif("h", 2, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=np.array([[0.5, -0.5], [0.25, 1.0]]))
    result = lower(net.build(), PIPELINE.replace(",verify-config", ""))
    config: HardwareConfig = result.annotations["hardware_config"]
    row = config.rows[0]
    w = bytearray(bytes.fromhex(row.weights))
    w[next(i for i, v in enumerate(w) if v)] += 1
    bad = config.model_copy(update={"rows": (row.model_copy(update={"weights": w.hex()}), *config.rows[1:])})
    g = result.graph.copy()
    g.graph["ann"] = {**g.graph["ann"], "hardware_config": bad}
    with pytest.raises(ConfigError) as info:
        VerifyConfig().run(g, PassContext())
    err = info.value
    assert any("holds another weight" in str(v) for v in err.violations)
    assert any("realised weight" in str(v) for v in err.violations)


@given(fitting)
@settings(max_examples=10)
def test_annotations_are_consistent_after_every_pass(net: ir.Network) -> None:
    from snncomp.targets.bss2 import check_annotations

    result = PassManager(PIPELINE, keep_stages=True).run(net)
    for name, g in result.stages:
        assert check_annotations(g) == [], name


def test_check_annotations_finds_overlapping_placements() -> None:
    from snncomp.passes import annotate_node
    from snncomp.targets.bss2 import check_annotations

    net = snncomp.Network("two")
    x = net.input("x", 2)
    a = net.lif("a", 2, tau_mem=10e-3, tau_syn=5e-3)
    b = net.lif("b", 2, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, a, weight=0.5)
    net.connect(x, b, weight=0.5)
    g = lower(net.build()).graph.copy()
    annotate_node(g, "b", placement=g.nodes["a"]["ann"]["placement"])
    assert any("holds both" in p for p in check_annotations(g))
