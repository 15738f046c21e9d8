"""The bss2 target on instantaneous synapses (``tau_syn = 0``), ``bias`` and ``if`` neurons.

The chip has current-based synapses, a leak it cannot switch off and no constant current source
(``BSS2_SPEC.md`` §2.1). ``map-parameters`` therefore approximates: ``tau_syn = 0`` becomes the chip's
smallest synaptic time constant with the weights into the population scaled by ``(tau_mem - tau_syn) /
tau_syn`` (a spike's voltage kick then equals ``w`` after its rise); ``bias`` becomes a shift of the leak
potential; an ``if`` population becomes the chip's longest membrane time constant (and is refused with a
non-zero bias). Each approximation is a remark with its numbers. ``dequantized_network`` describes what the
emulator then runs, so the ideal emulator equals the JAX target on it (the property of
``tests/test_mock_equivalence.py``, same one-tick bound, here on fixed seeds).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import jax
import numpy as np
import pytest

import snncomp
from snncomp import PassError
from snncomp.ir import Edge, IFNode, InputNode, LIFNode, LINode, Network
from snncomp.passes import pipeline
from snncomp.targets.bss2 import ChipSpec, ParameterError, dequantized_network
from snncomp.targets.bss2.mock import MockConfig, compile_mock
from snncomp.targets.bss2.mock._weights import requantize_host, requantize_jax

CHIP = ChipSpec()
TS = CHIP.tau_syn_range[0]  # 300 ns: the chip's smallest synaptic time constant
TM_MAX = CHIP.tau_mem_range[1]  # 60 us: its largest membrane time constant


def _net(*pops: object, weights: dict[tuple[str, str], float] | None = None, seed: int = 0) -> Network:
    """An input ``x`` (3 channels) and ``pops``, chained x -> pops[0] -> pops[1] ... with uniform weights."""
    rng = np.random.default_rng(seed)
    nodes = (InputNode(name="x", size=3), *pops)
    edges = []
    for s, t in itertools.pairwise(nodes):
        w = (weights or {}).get((s.name, t.name), 0.01)
        edges.append(Edge(source=s.name, target=t.name, weight=w * rng.uniform(0.5, 1.0, (s.size, t.size))))
    return Network(name="inst", nodes=nodes, edges=tuple(edges))


def _remarks(result: object, pop: str) -> list[str]:
    return [r.message for r in result.remarks if r.pass_name == "map-parameters" and r.message.startswith(pop + ":")]


def _refused(net: Network) -> str:
    """The map-parameters error for ``net`` (a ParameterError, wrapped by the pass manager)."""
    with pytest.raises(PassError) as info:
        pipeline("bss2").run(net)
    assert isinstance(info.value.__cause__, ParameterError), info.value.__cause__
    return str(info.value.__cause__)


def _hw(result: object, pop: str) -> object:
    return result.graph.nodes[pop]["ann"]["hw"]


# -- mapping ----------------------------------------------------------------------------------------------------


def test_tau_syn_zero_lif_gets_the_smallest_tau_syn_and_compensated_weights() -> None:
    net = _net(LIFNode(name="a", size=4, tau_mem=10e-3, tau_syn=0.0, v_threshold=0.1))
    res = pipeline("bss2").run(net)
    hw = _hw(res, "a")
    np.testing.assert_allclose(hw.tau_syn, TS)
    np.testing.assert_allclose(hw.tau_mem, 10e-6)
    k = (10e-6 - TS) / TS
    np.testing.assert_allclose(hw.weight_factor, k)
    (note,) = [m for m in _remarks(res, "a") if "instantaneous" in m]
    for text in ("tau_syn=0", "approximated", "current-based", "tau_syn=300ns", "300us model", "tau_syn/tau_mem=0.03"):
        assert text in note, (text, note)
    assert f"{k:.4g}" in note and "|w| <=" in note
    # The quantized weights carry the factor; the jump they stand for is the model weight to half a step,
    # the chip's current jump (effective) is factor times that.
    quant = res.graph.edges["x", "a", "x->a"]["ann"]["quant"]
    np.testing.assert_allclose(quant.factor, k)
    w = net.edges[0].weight
    assert np.abs(quant.jump() - w).max() <= 0.5 / (quant.scale * k) + 1e-15
    np.testing.assert_allclose(quant.effective(), quant.jump() * k)
    np.testing.assert_array_equal(quant.w_hw, np.round(w * quant.scale * k).astype(int))
    config = res.annotations["hardware_config"]
    assert all(n.weight_factor == pytest.approx(k) for n in config.neurons if n.population == "a")
    assert "w*32.33" in str(hw)


def test_bias_shifts_the_leak_with_a_remark_for_each_synapse_kind() -> None:
    net = _net(
        LIFNode(name="a", size=2, tau_mem=10e-3, tau_syn=0.0, bias=0.25),
        LIFNode(name="b", size=2, tau_mem=10e-3, tau_syn=5e-3, v_leak=-0.1, bias=0.4),
    )
    res = pipeline("bss2").run(net)
    np.testing.assert_allclose(_hw(res, "a").v_leak, 80 + 70 * 0.25)
    np.testing.assert_allclose(_hw(res, "b").v_leak, 80 + 70 * 0.3)
    assert _hw(res, "b").weight_factor is None
    np.testing.assert_allclose(_hw(res, "b").tau_syn, 5e-6)
    (exact,) = [m for m in _remarks(res, "a") if "bias" in m]
    assert "v_leak + bias = 0.25 model (97.5 LSB)" in exact and "exact" in exact and "t = 0" in exact
    (approx,) = [m for m in _remarks(res, "b") if "bias" in m]
    assert "v_leak + bias = 0.3 model (101 LSB)" in approx and "approximation" in approx
    assert "no such transient" in approx


def test_shifted_leak_outside_the_leak_range_names_population_demand_and_limit() -> None:
    net = _net(
        LINode(name="r", size=2, tau_mem=10e-3, tau_syn=5e-3, bias=1.5),
        weights={("x", "r"): 0.5},
    )
    text = _refused(net)
    assert "population 'r' v_leak + bias" in text
    assert "1.5 model = 185 LSB" in text and "[50, 160] LSB" in text
    # Per-neuron bias: the neuron is named.
    net = _net(LIFNode(name="a", size=3, tau_mem=10e-3, tau_syn=5e-3, v_threshold=2.0, bias=np.array([0.0, 1.2, 0.0])))
    assert re.search(r"population 'a' v_leak \+ bias \(neuron 1\): 1\.2 model = 164 LSB", _refused(net))


def test_tonically_firing_instantaneous_lif_is_refused() -> None:
    net = _net(LIFNode(name="a", size=2, tau_mem=10e-3, tau_syn=0.0, bias=1.1))
    text = _refused(net)
    assert "population 'a' v_leak + bias" in text and "1.1 >= v_threshold=1.0" in text and "tonically" in text


def test_if_gets_the_longest_membrane_time_constant() -> None:
    net = _net(IFNode(name="c", size=2, v_threshold=0.02, v_reset=-0.1, t_refrac=1e-3))
    res = pipeline("bss2").run(net)
    hw = _hw(res, "c")
    assert hw.kind == "if" and hw.fire
    np.testing.assert_allclose(hw.tau_mem, TM_MAX)
    np.testing.assert_allclose(hw.tau_syn, TS)
    np.testing.assert_allclose(hw.v_leak, 80.0)
    np.testing.assert_allclose(hw.v_reset, 80 - 7.0)
    np.testing.assert_allclose(hw.weight_factor, (TM_MAX - TS) / TS)
    notes = _remarks(res, "c")
    (leak,) = [m for m in notes if "leak" in m and "'if'" in m]
    assert "tau_mem=60us" in leak and "60ms model" in leak and "the leak is not zero" in leak
    (inst,) = [m for m in notes if "instantaneous synapses ('if')" in m]
    assert "tau_syn/tau_mem=0.005" in inst and "199" in inst
    config = res.annotations["hardware_config"]
    assert config.populations["c"].kind == "if"
    assert all(n.recorded for n in config.neurons if n.population == "c")
    deq = dequantized_network(res).node("c")
    assert deq.kind == "lif" and deq.v_leak == 0.0 and deq.v_reset == -0.1
    assert deq.tau_mem == pytest.approx(TM_MAX * 1000) and deq.tau_syn == pytest.approx(TS * 1000)


def test_if_with_a_drift_is_refused() -> None:
    net = _net(IFNode(name="c", size=2, bias=5.0))
    text = _refused(net)
    assert "population 'c' bias" in text and "bias=5.0" in text and "no mapping" in text
    net = _net(IFNode(name="c", size=3, bias=np.array([0.0, 0.0, -2.0])))
    assert re.search(r"population 'c' bias \(neuron 2\): bias=-2\.0", _refused(net))


def test_li_with_instantaneous_synapses_and_bias() -> None:
    net = _net(LINode(name="r", size=2, tau_mem=20e-3, tau_syn=0.0, v_leak=0.1, bias=-0.3))
    res = pipeline("bss2").run(net)
    hw = _hw(res, "r")
    assert not hw.fire
    np.testing.assert_allclose(hw.tau_syn, TS)
    np.testing.assert_allclose(hw.weight_factor, (20e-6 - TS) / TS)
    np.testing.assert_allclose(hw.v_leak, 80 + 70 * -0.2)
    notes = _remarks(res, "r")
    assert any("tau_syn/tau_mem=0.015" in m for m in notes)
    assert any("v_leak + bias = -0.2 model" in m and "exact" in m for m in notes)
    deq = dequantized_network(res).node("r")
    assert deq.kind == "li" and deq.bias == 0.0 and deq.v_leak == pytest.approx(-0.2)
    assert deq.tau_syn == pytest.approx(TS * 1000)


def test_dequantized_network_describes_the_chip() -> None:
    net = _net(
        LIFNode(name="a", size=3, tau_mem=np.array([5e-3, 10e-3, 20e-3]), tau_syn=0.0, v_threshold=0.1),
        LIFNode(name="b", size=2, tau_mem=10e-3, tau_syn=5e-3, bias=np.array([0.2, 0.5])),
        weights={("a", "b"): 0.5},
    )
    res = pipeline("bss2").run(net)
    deq = dequantized_network(res)
    a, b = deq.node("a"), deq.node("b")
    assert a.tau_syn == pytest.approx(TS * 1000) and a.bias == 0.0
    np.testing.assert_array_equal(a.tau_mem, net.node("a").tau_mem)
    np.testing.assert_allclose(b.v_leak, [0.2, 0.5])
    assert b.bias == 0.0 and b.tau_syn == 5e-3
    # Weights into 'a' are the chip's current jumps w_hw / scale: factor (per target column) times the
    # model's voltage jumps, to half a step.
    quant = res.graph.edges["x", "a", "x->a"]["ann"]["quant"]
    k = (np.array([5e-6, 10e-6, 20e-6]) - TS) / TS
    np.testing.assert_allclose(deq.edges[0].weight, quant.w_hw / quant.scale)
    np.testing.assert_allclose(
        deq.edges[0].weight / k[None, :], net.edges[0].weight, atol=0.5 / (quant.scale * k.min())
    )


def test_the_emulator_requantizes_with_the_weight_factor() -> None:
    net = _net(
        LIFNode(name="a", size=3, tau_mem=np.array([5e-3, 10e-3, 20e-3]), tau_syn=0.0, v_threshold=0.1),
        IFNode(name="c", size=2, v_threshold=0.02),
        weights={("a", "c"): 0.004},
    )
    with jax.enable_x64(True):
        exe = compile_mock(net, t_max=10e-3, dtype="float64")
        layout = exe._current.layout
        weights = {k: np.asarray(v) for k, v in exe.params["weight"].items()}
        req = requantize_host(layout, weights)
        np.testing.assert_array_equal(req.synapses, layout.base)  # the compiled weights, unchanged
        assert req.saturated == req.lost == 0
        _, effective, _, _ = requantize_jax(layout, weights, np.float64)
        deq = dequantized_network(exe.compile_result)
        for key, edge in zip(deq.edge_keys(), deq.edges):
            np.testing.assert_allclose(np.asarray(effective[key]), edge.weight, rtol=1e-12)


def test_calibrate_cli_takes_the_realised_time_constants(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from snncomp import ir
    from snncomp.targets.bss2 import _cli

    seen = {}

    def fake(mock: object, seed: int, **kw: object) -> object:
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("snncomp.targets.bss2.mock.calibrate_gain", fake)
    path = tmp_path / "net.json"
    ir.save(_net(IFNode(name="c", size=2, v_threshold=0.02)), path)
    import argparse

    parser = argparse.ArgumentParser()
    _cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(["bss2-calibrate", str(path), "--rounds", "1", "--repeats", "1"])
    with pytest.raises(SystemExit):
        args.func(args)
    assert seen["tau_mem"] == pytest.approx(TM_MAX * 1000) and seen["tau_syn"] == pytest.approx(TS * 1000)


# -- ideal emulator == JAX target on the dequantized network ------------------------------------------------------

BATCH = 8
EVENTS = 12
T_IN = 8e-3
T_MAX = 12e-3
SPIKES_PER_NEURON = 6
MARGIN = 1e-5
TOL = 1e-6  # in ticks
TICK = 8e-9 * 1000.0  # one FPGA clock cycle in model seconds at the default speedup


def _equivalence_net(seed: int) -> Network:
    rng = np.random.default_rng(seed)
    x = InputNode(name="x", size=3)
    a = LIFNode(name="a", size=4, tau_mem=float(rng.uniform(5e-3, 15e-3)), tau_syn=0.0, v_threshold=0.06, bias=0.02)
    b = LIFNode(name="b", size=3, tau_mem=10e-3, tau_syn=float(rng.uniform(2e-3, 6e-3)), bias=0.35)
    c = IFNode(name="c", size=2, v_threshold=0.012, v_reset=-0.01, t_refrac=0.5e-3)
    bound_a = 63 / (58 * (a.tau_mem / 1000 - TS) / TS)
    bound_c = 63 / (58 * (TM_MAX - TS) / TS)
    edges = (
        Edge(source="x", target="a", weight=rng.uniform(0.3, 1.0, (3, 4)) * bound_a),
        Edge(source="x", target="b", weight=rng.uniform(0.3, 1.0, (3, 3))),
        Edge(source="a", target="b", weight=rng.uniform(-0.5, 0.8, (4, 3))),
        Edge(source="a", target="c", weight=rng.uniform(0.2, 1.0, (4, 2)) * bound_c),
        Edge(source="x", target="c", weight=rng.uniform(0.2, 1.0, (3, 2)) * bound_c),
    )
    return Network(name=f"inst{seed}", nodes=(x, a, b, c), edges=edges)


def _inputs(seed: int, size: int) -> snncomp.Spikes:
    rng = np.random.default_rng(seed + 1000)
    n_ticks = int(T_IN / TICK)
    t = np.full((BATCH, EVENTS), np.inf)
    n = np.full((BATCH, EVENTS), -1)
    for b in range(BATCH):
        real = int(rng.integers(EVENTS // 2, EVENTS + 1))
        # Distinct release cycles: two inputs in one cycle would queue on the FPGA link.
        k = np.sort(rng.choice(n_ticks, real, replace=False))
        t[b, :real] = k * TICK
        n[b, :real] = rng.integers(0, size, real)
    return snncomp.Spikes(times=t, neurons=n.astype(np.int32))


@pytest.mark.parametrize("seed", range(4))
def test_ideal_mock_equals_jax_target_on_the_dequantized_network(seed: int) -> None:
    net = _equivalence_net(seed)
    spikes = {"x": _inputs(seed, 3)}
    tally: Counter = Counter()
    with jax.enable_x64(True):
        mock = compile_mock(
            net, t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, dtype="float64", mock=MockConfig.ideal()
        )
        rec_m, health = mock.run_with_health(spikes)
        deq = dequantized_network(mock.compile_result)
        assert {n.name: n.kind for n in deq.nodes} == {"x": "input", "a": "lif", "b": "lif", "c": "lif"}
        ref = snncomp.compile(deq, t_max=T_MAX, spikes_per_neuron=SPIKES_PER_NEURON, dtype="float64")
        rec_j = ref.run(spikes)
    for b in range(BATCH):
        tally["samples"] += 1
        excluded = (
            float(np.asarray(health.grazing)[b]) < MARGIN
            or int(np.asarray(health.delayed)[b])
            or int(np.asarray(health.dropped)[b])
            or any(bool(np.asarray(v)[b]) for d in (rec_m.overflow, rec_j.overflow) for v in d.values())
        )
        assert not bool(np.asarray(health.iteration_limit)[b])
        if excluded:
            tally["excluded"] += 1
            continue
        for pop in rec_j.spikes:
            tj, nj = np.asarray(rec_j.spikes[pop].times)[b], np.asarray(rec_j.spikes[pop].neurons)[b]
            tm, nm = np.asarray(rec_m.spikes[pop].times)[b], np.asarray(rec_m.spikes[pop].neurons)[b]
            for j in sorted(set(nj[nj >= 0].tolist()) | set(nm[nm >= 0].tolist())):
                want, got = np.sort(tj[nj == j]), np.sort(tm[nm == j])
                assert len(want) == len(got), (pop, b, j, want, got)
                lag = (want - got) / TICK  # the FPGA timestamp floors: 0 <= lag < 1 tick
                assert np.all(lag > -TOL) and np.all(lag < 1 + TOL), (pop, b, j, lag)
                tally[f"spikes {pop}"] += len(want)
        tally["compared"] += 1
    print(f"seed {seed}: {dict(tally)}")
    assert tally["compared"] >= 0.75 * tally["samples"], tally
    assert all(tally[f"spikes {p}"] > 0 for p in ("a", "b", "c")), tally  # every approximated population spikes


def test_hil_gradient_into_instantaneous_synapses_is_the_model_weights() -> None:
    """The replay runs the chip's current weights (factor * w); the gradient reaches w through that factor."""
    net = _equivalence_net(0)
    spikes = {"x": _inputs(0, 3)}

    def loss(rec: snncomp.Recording) -> jax.Array:
        total = jax.numpy.zeros(())
        for pop, size in (("a", 4), ("b", 3), ("c", 2)):
            t = rec.spikes[pop].to_first_spike_times(size)
            finite = jax.numpy.isfinite(t)
            total = total + jax.numpy.sum(
                jax.numpy.where(finite, jax.numpy.sin(300.0 * jax.numpy.where(finite, t, 0.0)), 0.0)
            )
        return total

    with jax.enable_x64(True):
        mock = compile_mock(
            net, t_max=T_MAX, dtype="float64", mock=MockConfig(quantize_timestamps=False, rate_limit=False)
        )
        soft = snncomp.compile(dequantized_network(mock.compile_result), target="jax", t_max=T_MAX, dtype="float64")
        g_mock = jax.grad(lambda p: loss(mock.run(spikes, p, trial=0)))(mock.params)["weight"]
        g_soft = jax.grad(lambda p: loss(soft.apply(p, spikes)))(soft.params)["weight"]
    factors = {k: p.factor for k, p in mock._current.layout.projections.items()}
    for key in g_soft:
        want = np.asarray(g_soft[key]) * factors[key][None, :]
        assert np.any(want != 0.0), key
        np.testing.assert_allclose(
            np.asarray(g_mock[key]), want, rtol=1e-7, atol=1e-9 * np.abs(want).max(), err_msg=key
        )
    assert factors["x->a"].min() > 10 and factors["x->b"].max() == 1.0


def test_remark_numbers_match_the_psp_of_the_compensated_synapse() -> None:
    """The remark's peak: ``w (exp(-t/tau_mem) - exp(-t/tau_syn))`` at its maximum, for tau_syn/tau_mem = 0.03."""
    res = pipeline("bss2").run(_net(LIFNode(name="a", size=1, tau_mem=10e-3, tau_syn=0.0, v_threshold=0.1)))
    (note,) = [m for m in _remarks(res, "a") if "instantaneous" in m]
    peak = float(re.search(r"peak ([0-9.]+)\*w", note).group(1))
    t = np.linspace(0, 5e-3, 200001)
    v = np.exp(-t / 10e-3) - np.exp(-t / (TS * 1000))
    assert peak == pytest.approx(v.max(), rel=1e-3)
