"""BrainScaleS-2 lowering: fixed networks, placement strategies and constraints, diagnostics, golden text."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import GOLDEN_DIR, check_golden

import snncomp
from snncomp import PassError, ir
from snncomp.passes import PassManager, format_graph
from snncomp.targets.bss2 import (
    ChipSpec,
    HardwareConfig,
    ParameterError,
    ResourceError,
    WeightSaturationWarning,
    dequantized_network,
    format_report,
    placement_dot,
)

# These tests are about placement, routing and diagnostics; the jaxsnn-like random weights of some of them
# saturate the 6-bit synapses, which tests/test_silent_results.py checks. Tests that saturate on purpose
# assert the warning with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::snncomp.targets.bss2.errors.WeightSaturationWarning")

GOLDEN = GOLDEN_DIR / "bss2"
PIPELINE = str(snncomp.pipeline("bss2"))
FIRST_FIT = PIPELINE.replace("place,", "place{strategy=first-fit},")


def normal(shape: tuple[int, int], mean: float, std: float, seed: int) -> np.ndarray:
    """Weights from numpy (snncomp.init draws with JAX, whose per-shape compile would dominate these tests)."""
    return np.random.default_rng(seed).normal(mean, std, size=shape)


def yinyang(hidden: int, n_in: int = 25, seed: int = 0, **lif: object) -> ir.Network:
    """jaxsnn's Yin-Yang network shape: n_in -> hidden -> 3, dense, signed weights."""
    params = {"tau_mem": 12e-3, "tau_syn": 6e-3, "max_spikes": 1, **lif}
    net = snncomp.Network(f"yinyang{hidden}")
    x = net.input("x", n_in)
    h = net.lif("h", hidden, **params)
    o = net.lif("o", 3, **params)
    net.connect(x, h, weight=normal((n_in, hidden), 0.6, 0.3, seed))
    net.connect(h, o, weight=normal((hidden, 3), 0.5, 0.8, seed + 1))
    return net.build()


def compile_bss2(net: ir.Network, pipeline: str = PIPELINE, **kw: object) -> snncomp.passes.CompileResult:
    return PassManager(pipeline, **kw).run(net)


def cause(exc: PassError) -> BaseException:
    assert exc.__cause__ is not None
    return exc.__cause__


# -- fixed cases -------------------------------------------------------------------------------------------------


def test_yinyang_100_fits_and_is_verified() -> None:
    result = compile_bss2(yinyang(100))
    ann = result.annotations
    assert ann["config_check"].synapses == 2 * (25 * 100 + 100 * 3)
    rep = ann["resources"]
    assert sum(rep.circuits) == 103
    assert sum(rep.rows) == 250  # 2 x 25 external + 2 x 100 internal rows (spec §3.5)


def test_yinyang_100_first_fit_matches_spec_worked_example() -> None:
    """First-fit puts everything in hemisphere 0: 250/256 rows, bus 0 exactly full (spec §3.5)."""
    result = compile_bss2(yinyang(100), FIRST_FIT)
    rep = result.annotations["resources"]
    assert rep.rows == (250, 0)
    bus = {(b.hemisphere, b.bus): b.rows for b in rep.buses}
    assert bus[(0, 0)] == 64 and bus[(0, 1)] == 64 and bus[(0, 2)] == 64


def test_yinyang_120_first_fit_fails_routing_aware_fits() -> None:
    with pytest.raises(PassError) as info:
        compile_bss2(yinyang(120), FIRST_FIT)
    err = cause(info.value)
    assert isinstance(err, ResourceError)
    resources = [v.resource for v in err.violations]
    assert "synapse rows in hemisphere 0" in resources
    assert any(r.startswith("synapse rows on PADI bus") for r in resources)
    assert "pass 'route' failed" in str(info.value)

    result = compile_bss2(yinyang(120))
    assert result.annotations["config_check"].synapses == 2 * (25 * 120 + 120 * 3)
    assert result.annotations["placement"].feasible


def test_512_neurons_fit() -> None:
    net = snncomp.Network("full")
    x = net.input("x", 8)
    h = net.lif("h", 512, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=normal((8, 512), 0.0, 0.5, 3))
    result = compile_bss2(net.build())
    assert result.annotations["resources"].circuits == (256, 256)
    assert result.annotations["config_check"].synapses == 2 * 8 * 512


def test_513_neurons_fail_naming_circuits() -> None:
    net = snncomp.Network("toobig")
    x = net.input("x", 4)
    a = net.lif("a", 500, tau_mem=10e-3, tau_syn=5e-3)
    b = net.lif("b", 13, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, a, weight=0.5)
    net.connect(x, b, weight=0.5)
    with pytest.raises(PassError) as info:
        compile_bss2(net.build())
    err = cause(info.value)
    assert isinstance(err, ResourceError)
    (v,) = err.violations
    assert (v.resource, v.demand, v.limit, v.check) == ("neuron circuits", 513, 512, 1)
    assert "a (500 neurons)" in str(err) and "b (13 neurons)" in str(err)


def test_pipeline_string_and_requirements() -> None:
    assert PIPELINE == (
        "verify,infer-shapes,canonicalize,analyze-structure,map-parameters,split-sign,quantize,partition,place,route,verify-config"
    )
    with pytest.raises(PassError, match="requires placement"):
        PassManager("map-parameters,split-sign,quantize,route")


def test_hardware_config_json_roundtrip_and_report(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = compile_bss2(yinyang(30, n_in=5))
    config: HardwareConfig = result.annotations["hardware_config"]
    text = config.model_dump_json()
    back = HardwareConfig.model_validate_json(text)
    assert back == config
    assert back.model_dump_json() == text
    config.save(tmp_path / "c.json")
    assert HardwareConfig.load(tmp_path / "c.json") == config
    assert json.loads(text)["config_version"] == 1
    # Every neuron and projection has its hardware resources in the map.
    assert {p: m.size for p, m in config.populations.items()} == {"x": 5, "h": 30, "o": 3}
    assert sum(len(config.projections[k].pre) for k in config.projections) == 2 * (5 * 30 + 30 * 3)
    table = format_report(result)
    assert "neuron circuits" in table and "PADI bus 0 of hemisphere 0: rows" in table
    dot = placement_dot(result)
    assert dot.startswith('digraph "bss2_yinyang30"') and "PADI bus" in dot and re.search(r"h x[0-9]+: \[", dot)


def test_dequantized_network_carries_quantized_weights() -> None:
    net = yinyang(20, n_in=4)
    result = compile_bss2(net)
    deq = dequantized_network(result)
    scale = result.annotations["quantization"].scale
    for e_orig, e_deq in zip(net.edges, deq.edges):
        expect = np.sign(e_orig.weight) * np.floor(np.abs(np.clip(e_orig.weight * scale, -63, 63)) + 0.5) / scale
        np.testing.assert_array_equal(e_deq.weight, expect)
    assert deq.metadata["bss2.dequantized"]["scale"] == scale
    assert deq.node("h").t_refrac == pytest.approx(32e-3, rel=0.01)  # max_spikes=1: refractory covers the run


def test_li_readout_and_recurrence() -> None:
    net = snncomp.Network("rec")
    x = net.input("x", 6)
    a = net.lif("a", 40, tau_mem=20e-3, tau_syn=5e-3, t_refrac=2e-3)
    o = net.li("o", 4, tau_mem=20e-3, tau_syn=5e-3)
    net.connect(x, a, weight=normal((6, 40), 0.5, 0.5, 1))
    net.connect(a, a, weight=normal((40, 40), 0.0, 0.2, 2), mask=np.random.default_rng(0).random((40, 40)) < 0.2)
    net.connect(a, o, weight=normal((40, 4), 0.0, 0.3, 3))
    result = compile_bss2(net.build())
    config: HardwareConfig = result.annotations["hardware_config"]
    assert config.readout.cadc == ("o",)
    o_neurons = [config.neurons[k] for k in config.populations["o"].neurons]
    assert not any(n.fire or n.recorded for n in o_neurons)
    a_neurons = [config.neurons[k] for k in config.populations["a"].neurons]
    assert all(n.recorded for n in a_neurons)
    assert all(n.refractory_time == pytest.approx(2e-6, rel=0.05) for n in a_neurons)


def test_split_saturation_spends_extra_synapses() -> None:
    net = snncomp.Network("big")
    x = net.input("x", 2)
    h = net.lif("h", 2, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=np.array([[3.0, -0.5], [0.25, 2.0]]))
    with pytest.warns(WeightSaturationWarning, match="'x->h': 2 of 4 weights, worst w=3 "):
        clip = compile_bss2(net.build())
    assert clip.annotations["quantization"].saturated == 2
    split = compile_bss2(net.build(), PIPELINE.replace("quantize", "quantize{saturate=split}"))
    q = split.annotations["quantization"]
    assert q.saturated == 0 and q.split_extra == 2 + 1  # 3*58=174 -> 63+63+48; 2*58=116 -> 63+53
    w = split.annotations["hardware_config"].projections["x->h"].weight
    assert sorted(w)[-5:] == [53, 58, 63, 63, 63] or max(w) == 63
    deq = dequantized_network(split)
    np.testing.assert_allclose(deq.edges[0].weight, np.array([[174, -29], [15, 116]]) / 58)


def test_signs_used_halves_the_rows() -> None:
    both = compile_bss2(yinyang(40, n_in=10))
    used = compile_bss2(yinyang(40, n_in=10), PIPELINE.replace("split-sign", "split-sign{signs=used}"))
    assert sum(used.annotations["resources"].rows) < sum(both.annotations["resources"].rows)
    assert used.annotations["config_check"].synapses == 10 * 40 + 40 * 3 - 0  # no zero weights drawn


# -- placement constraints ---------------------------------------------------------------------------------------


def with_metadata(net: ir.Network, **meta: object) -> ir.Network:
    return net.replace(metadata={**net.metadata, **meta})


def test_user_placement_constraints_are_honoured() -> None:
    circuits = [256 + 200, 256 + 201, 5]
    net = with_metadata(
        yinyang(40, n_in=5), **{"bss2.placement": {"h": {"hemisphere": 1}, "o": {"circuits": circuits}}}
    )
    for pipe in (PIPELINE, FIRST_FIT):
        result = compile_bss2(net, pipe)
        config: HardwareConfig = result.annotations["hardware_config"]
        got = [(config.neurons[k].hemisphere, config.neurons[k].column) for k in config.populations["o"].neurons]
        assert got == [(1, 200), (1, 201), (0, 5)]
        assert {config.neurons[k].hemisphere for k in config.populations["h"].neurons} == {1}


def test_colliding_constraints_are_all_reported() -> None:
    net = with_metadata(
        yinyang(4, n_in=2),
        **{
            "bss2.placement": {"h": {"circuits": [0, 1, 2, 3]}, "o": {"circuits": [3, 2, 600]}, "zz": {"hemisphere": 0}}
        },
    )
    with pytest.raises(PassError) as info:
        compile_bss2(net)
    err = cause(info.value)
    assert isinstance(err, ResourceError)
    text = str(err)
    assert "'zz'" in text and "o'].circuits" in text  # unknown population; circuit number off chip
    net = with_metadata(
        yinyang(4, n_in=2), **{"bss2.placement": {"h": {"circuits": [0, 1, 2, 3]}, "o": {"circuits": [3, 2, 9]}}}
    )
    with pytest.raises(PassError) as info:
        compile_bss2(net)
    err = cause(info.value)
    assert [v.resource for v in err.violations] == ["circuit h0:c3", "circuit h0:c2"]
    assert all((v.check == 2 and "h[3]" in str(v)) or "h[2]" in str(v) for v in err.violations)


# -- diagnostics: one exceeded limit each ----------------------------------------------------------------------


def test_rows_in_a_hemisphere_diagnostic() -> None:
    net = with_metadata(yinyang(120), **{"bss2.placement": {"h": {"hemisphere": 0}, "o": {"hemisphere": 0}}})
    with pytest.raises(PassError) as info:
        compile_bss2(net)
    err = cause(info.value)
    hemi = [v for v in err.violations if v.resource == "synapse rows in hemisphere 0"]
    assert len(hemi) == 1 and hemi[0].demand == 290 and hemi[0].limit == 256 and hemi[0].check == 3
    assert "targets h[0-119], o[0-2]" in str(hemi[0])


def test_rows_on_a_padi_bus_diagnostic() -> None:
    # 40 source neurons pinned to event output 0 of hemisphere 0 feed one neuron: 80 rows on bus 0.
    net = snncomp.Network("bus")
    x = net.input("x", 1)
    h = net.lif("h", 40, tau_mem=10e-3, tau_syn=5e-3)
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, h, weight=1.0)
    net.connect(h, o, weight=0.1)
    pins = {"h": {"circuits": list(range(32)) + list(range(256, 264))}, "o": {"hemisphere": 0}}
    with pytest.raises(PassError) as info:
        compile_bss2(with_metadata(net.build(), **{"bss2.placement": pins}))
    err = cause(info.value)
    bus = [v for v in err.violations if v.check == 8]
    assert len(bus) == 1 and bus[0].resource == "synapse rows on PADI bus 0 of hemisphere 0"
    assert bus[0].demand == 80 and bus[0].limit == 64
    assert "event output 0 h[0-39] (80 rows)" in str(bus[0])
    per_circuit = [v for v in err.violations if v.check == 6]
    assert per_circuit and "neuron o[0]" in per_circuit[0].resource


def test_circuit_fan_in_diagnostic() -> None:
    net = with_metadata(
        yinyang(1, n_in=200), **{"bss2.placement": {"h": {"circuits_per_neuron": 1}}}
    )  # 200 inputs x 2 signs = 400 synapses into one circuit
    with pytest.raises(PassError) as info:
        compile_bss2(net)
    err = cause(info.value)
    fan = [v for v in err.violations if v.check == 5]
    assert fan and fan[0].demand == 400 and fan[0].limit == 256 and "neuron h[0]" in fan[0].resource
    # Without the constraint the placer gives the neuron two circuits and it fits.
    result = compile_bss2(yinyang(1, n_in=200))
    config = result.annotations["hardware_config"]
    assert config.neurons[config.populations["h"].neurons[0]].width == 2


def test_madc_diagnostic() -> None:
    net = with_metadata(yinyang(4, n_in=2), **{"bss2.readout": {"madc": [["h", 0], ["o", 1]]}})
    with pytest.raises(PassError) as info:
        compile_bss2(net)
    (v,) = cause(info.value).violations
    assert (v.resource, v.demand, v.limit, v.check) == ("neurons recorded by the MADC", 2, 1, 4)
    ok = compile_bss2(with_metadata(yinyang(4, n_in=2), **{"bss2.readout": {"madc": [["h", 0]]}}))
    assert ok.annotations["hardware_config"].readout.madc == (("h", 0),)


def test_parameter_diagnostics_list_everything_with_hints() -> None:
    net = snncomp.Network("slow")
    x = net.input("x", 2)
    a = net.lif("a", 3, tau_mem=100e-3, tau_syn=5e-3, v_threshold=2.5)
    b = net.li("b", 2, tau_mem=np.array([10e-3, 90e-3]), tau_syn=5e-3)
    net.connect(x, a, weight=0.5, delay=1e-3)
    net.connect(a, b, weight=0.5)
    with pytest.raises(PassError) as info:
        compile_bss2(net.build())
    err = cause(info.value)
    assert isinstance(err, ParameterError)
    text = str(err)
    assert "population 'a' tau_mem" in text and "100ms model = 100us on chip, allowed [500ns, 60us]" in text
    assert "population 'b' tau_mem (neuron 1)" in text
    # 100 ms / 60 us <= speedup <= 5 ms / 300 ns
    assert "map-parameters{speedup} in [1667, 1.667e+04] fits every value" in text
    assert "population 'a' v_threshold: 2.5 model = 255 LSB" in text
    assert "map-parameters{v_scale} (at v_offset=80) <= 56 fits every value" in text
    assert "projection 'x->a': delay" in text


def test_speedup_option_fixes_time_constants() -> None:
    net = snncomp.Network("slow")
    x = net.input("x", 2)
    a = net.lif("a", 3, tau_mem=100e-3, tau_syn=20e-3)
    net.connect(x, a, weight=0.5)
    result = compile_bss2(net.build(), PIPELINE.replace("map-parameters", "map-parameters{speedup=2000}"))
    config = result.annotations["hardware_config"]
    assert config.speedup == 2000 and config.neurons[0].tau_mem == pytest.approx(50e-6)


def test_custom_chip_via_compile_option() -> None:
    chip = ChipSpec(v_threshold_range=(50.0, 140.0))
    with pytest.raises(PassError, match="v_threshold"):
        PassManager(PIPELINE).run(yinyang(4, n_in=2), {"chip": chip})
    result = PassManager(PIPELINE).run(yinyang(4, n_in=2), {"chip": {"v_scale": 50.0}})
    assert result.annotations["hardware_config"].chip.v_scale == 50.0
    assert result.annotations["quantization"].scale == pytest.approx(58 * 50 / 70)


# -- golden text after each bss2 pass --------------------------------------------------------------------------


def small() -> ir.Network:
    net = snncomp.Network("small")
    x = net.input("x", 3)
    h = net.lif("h", 4, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    w1 = np.linspace(-1.2, 1.5, 12).reshape(3, 4)
    net.connect(x, h, weight=w1)
    net.connect(
        h,
        o,
        weight=np.array([[0.5, -0.25], [0.125, 0.0], [1.0, -1.0], [0.3, 0.7]]),
        mask=np.array([[True, True], [True, False], [True, True], [False, True]]),
    )
    return net.build()


def test_golden_after_each_bss2_pass(update_golden: bool) -> None:
    with pytest.warns(WeightSaturationWarning, match="'x->h': 3 of 12 weights"):
        result = PassManager(PIPELINE, keep_stages=True).run(small())
    stages = [
        (name, g)
        for name, g in result.stages
        if name in ("map-parameters", "split-sign", "quantize", "place", "route", "verify-config")
    ]
    text = "\n// -----\n".join(f"// ----- IR after '{name}' ----- //\n{format_graph(g)}" for name, g in stages) + "\n"
    text += "// ----- resource report ----- //\n" + format_report(result) + "\n"
    check_golden(GOLDEN / "small.expected.txt", text, update_golden)


def test_two_event_outputs_on_one_bus_share_its_drivers() -> None:
    """Event outputs 0 and 4 both feed PADI bus 0: each group can then use at most 28 of its 32 drivers."""
    net = snncomp.Network("shared")
    x = net.input("x", 1)
    a = net.lif("a", 30, tau_mem=10e-3, tau_syn=5e-3)
    b = net.lif("b", 1, tau_mem=10e-3, tau_syn=5e-3)
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3)
    net.connect(x, a, weight=1.0)
    net.connect(x, b, weight=1.0)
    net.connect(a, o, weight=0.1)
    net.connect(b, o, weight=0.1)
    pins = {"a": {"circuits": list(range(30))}, "b": {"circuits": [128]}, "o": {"circuits": [200]}}
    with pytest.raises(PassError) as info:
        compile_bss2(with_metadata(net.build(), **{"bss2.placement": pins}))
    (v,) = cause(info.value).violations
    assert v.check == 13 and v.resource == "row-select addresses on PADI bus 0 of hemisphere 0"
    assert "[30, 1] drivers" in v.detail
    # With b in event output 1 instead, both fit.
    pins["b"] = {"circuits": [32]}
    compile_bss2(with_metadata(net.build(), **{"bss2.placement": pins}))
