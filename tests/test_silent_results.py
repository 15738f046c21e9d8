"""No silent results (issue #16): reports and summaries say what really happened.

The jax report names per-neuron parameters; the bss2 quantize summary counts saturated weights with their
error, and a weight clipped by more than a step warns; ragged lists in the DSL fail with the DSL's prefix.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import snncomp
from snncomp.errors import DSLError
from snncomp.passes import PassManager
from snncomp.targets.bss2 import WeightSaturationWarning

BSS2 = str(snncomp.pipeline("bss2"))
BOUND = 63 / 58  # the largest weight a synapse realises at the default scale


# -- jax report: which parameters are per-neuron -----------------------------------------------------------------


def _params_label(**lif: object) -> str:
    net = snncomp.Network("p")
    net.input("x", 2)
    net.lif("h", 3, **{"tau_mem": 10e-3, "tau_syn": 5e-3, "max_spikes": 2, **lif})
    net.connect("x", "h", weight=1.0)
    report = str(snncomp.compile(net, target="jax", t_max=20e-3).report())
    (line,) = [ln for ln in report.splitlines() if ln.strip().startswith("h: lif[3]")]
    return line.split("params=", 1)[1]


@pytest.mark.parametrize(
    ("lif", "label"),
    [
        ({}, "uniform"),
        ({"tau_syn": [5e-3, 6e-3, 5e-3]}, "per-neuron (tau_syn)"),
        ({"v_threshold": [1.0, 1.2, 1.1]}, "per-neuron (v_threshold)"),
        ({"tau_mem": [10e-3, 20e-3, 10e-3], "t_refrac": [0.0, 1e-3, 0.0]}, "per-neuron (tau_mem, t_refrac)"),
        # theta = v_threshold - v_leak varies with v_leak, but the threshold itself does not.
        ({"v_leak": [0.0, 0.1, 0.2]}, "per-neuron (v_leak)"),
        ({"v_leak": [0.0, 0.1, 0.2], "v_threshold": [1.0, 1.0, 1.5]}, "per-neuron (v_threshold, v_leak)"),
        ({"v_threshold": [1.0, 1.0, 1.0]}, "uniform"),  # equal values are uniform
    ],
)
def test_jax_report_names_per_neuron_parameters(lif: dict, label: str) -> None:
    assert _params_label(**lif) == label


# -- bss2 quantize: saturation is counted and reported with its error -------------------------------------------


def _net(weight: object, n_in: int = 3, n_out: int = 5) -> snncomp.Network:
    net = snncomp.Network("sat")
    net.input("x", n_in)
    net.lif("h", n_out, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect("x", "h", weight=weight)
    return net


def _quantize(weight: object, pipeline: str = BSS2) -> snncomp.passes.CompileResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightSaturationWarning)
        return PassManager(pipeline).run(_net(weight).build())


def test_summary_reports_saturated_weights_and_their_error() -> None:
    w = np.where(np.arange(15).reshape(3, 5) < 12, 50.0, 0.5)  # 12 saturated, 3 within range
    result = _quantize(w)
    q = result.annotations["quantization"]
    assert q.saturated == 12 and q.weights == 15
    assert q.saturation_error == pytest.approx(50 - BOUND)
    assert q.max_error <= 0.5 / q.scale  # the within-range rounding error is unchanged
    assert q.worst_error == pytest.approx(50 - BOUND)
    text = q.text()
    assert "saturated=12 of 15 weights, largest saturation error 48.9" in text
    assert "(half step 0.00862)" in text
    assert any("largest saturation error 48.9" in str(r) for r in result.remarks)
    # The projection's own annotation says it too.
    edge_text = next(str(d["ann"]["quant"]) for *_, d in result.graph.edges(keys=True, data=True))
    assert "saturated=12 (largest error 48.9)" in edge_text


def test_summary_when_every_weight_saturates_does_not_read_as_exact() -> None:
    q = _quantize(50.0).annotations["quantization"]
    assert q.max_error == 0.0  # no weight within range ...
    assert q.saturated == 15 and "saturated=15 of 15 weights, largest saturation error 48.9" in q.text()


def test_summary_without_saturation() -> None:
    q = _quantize(0.5).annotations["quantization"]
    assert q.saturated == 0 and q.saturation_error == 0.0
    assert q.text().endswith("saturated=0 of 15 weights")


# -- bss2 quantize: a weight clipped by more than one step warns -------------------------------------------------


def test_saturation_beyond_one_step_warns_once_with_cause_and_fix() -> None:
    net = snncomp.Network("two")
    net.input("x", 3)
    net.lif("h", 5, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect("x", "h", weight=50.0)
    w2 = np.full((5, 2), 0.5)
    w2[3, 1] = -7.0
    net.connect("h", "o", weight=w2)
    with pytest.warns(WeightSaturationWarning) as record:
        snncomp.compile(net, target="bss2-mock", t_max=20e-3)
    sat = [w for w in record if issubclass(w.category, WeightSaturationWarning)]
    assert len(sat) == 1  # one warning per compile, for every projection
    assert sat[0].filename == __file__  # points at the user's line
    msg = str(sat[0].message)
    assert "16 of 25 weights in 2 projection(s)" in msg
    assert "largest weight a synapse realises is +-1.086" in msg and "63 hardware units at scale=58" in msg
    assert "'x->h': 15 of 15 weights, worst w=50 at [0, 0] realised as 1.086 (error 48.9)" in msg
    assert "'h->o': 1 of 10 weights, worst w=-7 at [3, 1] realised as -1.086 (error 5.91)" in msg
    assert "saturate='split'" in msg and "quantize{saturate=split}" in msg
    assert "scale=1.26 or less" in msg and "quantize{scale=...}" in msg


def test_no_warning_when_weights_fit_or_saturate_by_less_than_a_step() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightSaturationWarning)
        snncomp.compile(_net(0.5), target="bss2-mock", t_max=20e-3)
        # 1.1 * 58 = 63.8: clipped to 63, an error of 0.8 steps: counted, but no warning.
        q = PassManager(BSS2).run(_net(1.1).build()).annotations["quantization"]
        assert q.saturated == 15 and q.saturation_error == pytest.approx(1.1 - BOUND)
        # saturate=split keeps large weights: nothing is clipped.
        split = PassManager(BSS2.replace("quantize", "quantize{saturate=split}")).run(_net(3.0).build())
        assert split.annotations["quantization"].saturated == 0


def test_pass_manager_warns_too() -> None:
    with pytest.warns(WeightSaturationWarning, match=r"'x->h': 15 of 15 weights, worst w=-2"):
        PassManager(BSS2).run(_net(-2.0).build())


# -- DSL: ragged lists fail with the DSL's prefix ----------------------------------------------------------------


def _builder() -> snncomp.Network:
    net = snncomp.Network("r")
    net.input("x", 2)
    net.lif("h", 2, tau_mem=10e-3, tau_syn=5e-3)
    return net


RAGGED = r"ragged nested list: rows of different lengths \(\[0\] has 2 values, \[1\] has 1 value\)"


def test_ragged_weight_list_names_the_call_and_the_field() -> None:
    with pytest.raises(DSLError, match=rf"test_silent_results\.py:\d+: connect\('x', 'h'\): weight: {RAGGED}"):
        _builder().connect("x", "h", weight=[[1, 2], [3]])


def test_ragged_lists_in_other_arguments_say_the_same() -> None:
    with pytest.raises(DSLError, match=rf"\.py:\d+: connect\('x', 'h'\): mask: {RAGGED}"):
        _builder().connect("x", "h", weight=[[1, 2], [3, 4]], mask=[[1, 0], [1]])
    with pytest.raises(DSLError, match=rf"\.py:\d+: connect\('x', 'h'\): init result: {RAGGED}"):
        _builder().connect("x", "h", init=lambda shape, dtype: [[1.0, 2.0], [3.0]])
    with pytest.raises(DSLError, match=rf"\.py:\d+: lif\('k'\): tau_mem: {RAGGED}"):
        _builder().lif("k", 2, tau_mem=[[1e-2, 1e-2], [1e-2]], tau_syn=5e-3)
    with pytest.raises(DSLError, match=r"lif\('k'\): v_threshold: ragged nested list: .*\[0\] has a single number"):
        _builder().lif("k", 2, tau_mem=1e-2, tau_syn=5e-3, v_threshold=[1.0, [1.0]])
    # Deeper raggedness names the row.
    with pytest.raises(DSLError, match=r"weight: ragged nested list: .*\(\[1\]\[0\] has 2 values, \[1\]\[1\] has 1"):
        _builder().connect("x", "h", weight=[[[1], [2]], [[1, 2], [3]]])
