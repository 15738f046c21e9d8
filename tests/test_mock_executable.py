"""The bss2-mock executable behaves like the jax target's: params, Recording layout, validation, traces."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.errors import PassError, TargetError
from snncomp.runtime import BufferOverflowError, InputError, Report
from snncomp.targets.bss2 import HardwareConfig
from snncomp.targets.bss2.mock import MockConfig, MockExecutable, MockHealth, compile_mock

T_MAX = 20e-3


def _net(hidden: int = 12, w_in: float = 0.9, seed: int = 0, max_spikes: int | None = 1) -> snncomp.ir.Network:
    net = snncomp.Network("small")
    x = net.input("x", 4)
    h = net.lif("h", hidden, tau_mem=10e-3, tau_syn=5e-3, max_spikes=max_spikes)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(w_in, 0.3, seed=seed))
    net.connect(h, o, init=snncomp.init.normal(0.4, 0.3, seed=seed + 1))
    return net.build()


def _inputs(batch: int = 3, seed: int = 0) -> dict[str, snncomp.Spikes]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 8e-3, (batch, 4))
    n = np.tile(np.arange(4), (batch, 1))
    return {"x": snncomp.Spikes.from_lists(list(t), list(n))}


@pytest.fixture(scope="module")
def exe() -> MockExecutable:
    return compile_mock(_net(), t_max=T_MAX)


def test_params_and_recording_look_like_the_jax_target(exe: MockExecutable) -> None:
    ref = snncomp.compile(_net(), t_max=T_MAX)
    assert jax.tree_util.tree_structure(exe.params) == jax.tree_util.tree_structure(ref.params)
    for group in ("weight", "delay"):
        for key, value in ref.params[group].items():
            assert exe.params[group][key].shape == value.shape
            assert exe.params[group][key].dtype == value.dtype
    inputs = _inputs()
    rec, want = exe.run(inputs), ref.run(inputs)
    assert set(rec.spikes) == set(want.spikes) and set(rec.overflow) == set(want.overflow)
    for pop in want.spikes:
        assert rec.spikes[pop].times.shape == want.spikes[pop].times.shape
        assert rec.spikes[pop].times.dtype == want.spikes[pop].times.dtype
        assert rec.spikes[pop].neurons.dtype == want.spikes[pop].neurons.dtype
        assert rec.overflow[pop].shape == want.overflow[pop].shape
    assert rec.traces == {}
    assert isinstance(exe.lowered, HardwareConfig)
    assert exe.network.edge_keys() == ref.network.edge_keys()


def test_one_trace_per_input_shape(exe: MockExecutable) -> None:
    fresh = compile_mock(_net(), t_max=T_MAX)
    a = _inputs(batch=3)
    fresh.run(a)
    fresh.run(_inputs(batch=3, seed=1))
    fresh.run(a, t_max=15e-3)  # a new window is a value, not a shape
    fresh.run(a, fresh.params)  # so are new weights
    assert fresh.n_traces == 1
    fresh.run(_inputs(batch=5))
    assert fresh.n_traces == 2


def test_inputs_are_validated_like_the_jax_target(exe: MockExecutable) -> None:
    ref = snncomp.compile(_net(), t_max=T_MAX)
    good = _inputs()["x"]
    bad_inputs = [
        {"y": good},
        {},
        {"x": snncomp.Spikes.from_lists([[0.0, 1e-3]], [[0, 7]])},
        {"x": snncomp.Spikes.from_lists([[-1e-3]], [[0]])},
        {"x": snncomp.Spikes(times=jnp.array([[np.nan]]), neurons=jnp.array([[0]], jnp.int32))},
        {"x": snncomp.Spikes(times=jnp.array([[1e-3]]), neurons=jnp.array([[-1]], jnp.int32))},
        {"x": [0.0]},
    ]
    for inputs in bad_inputs:
        with pytest.raises(InputError) as theirs:
            ref.run(inputs)
        with pytest.raises(InputError) as ours:
            exe.run(inputs)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(InputError, match="params must be a dict"):
        exe.run(_inputs(), {"weight": {}})
    with pytest.raises(InputError, match="no programmable synaptic delay"):
        exe.run(_inputs(), {**exe.params, "delay": {k: jnp.asarray(1e-3) for k in exe.params["delay"]}})
    with pytest.raises(InputError, match="spikes only"):
        exe.run(_inputs(), trace_times=np.linspace(0, 1e-3, 3))
    with pytest.raises(InputError, match="on_overflow"):
        exe.run(_inputs(), on_overflow="ignore")  # type: ignore[arg-type]


def test_inputs_traced_inside_jit_are_checked() -> None:
    exe = compile_mock(_net(), t_max=T_MAX)
    bad = snncomp.Spikes(times=jnp.array([[1e-3, 2e-3]]), neurons=jnp.array([[0, 9]], jnp.int32))

    @jax.jit
    def first(times: jax.Array, neurons: jax.Array) -> jax.Array:
        return exe.run({"x": snncomp.Spikes(times=times, neurons=neurons)}).spikes["o"].times

    good = _inputs(batch=1)["x"]
    np.testing.assert_array_equal(
        np.asarray(first(good.times, good.neurons)), np.asarray(exe.run({"x": good}).spikes["o"].times)
    )
    # Inside a user's jit the check is compiled into the program and raises when it runs.
    with pytest.raises(Exception, match=r"inputs\['x'\]: a neuron index is out of range \[0, 4\)"):
        jax.block_until_ready(first(bad.times, bad.neurons))


def test_compile_options_are_checked() -> None:
    with pytest.raises(TargetError, match="no option"):
        compile_mock(_net(), t_max=T_MAX, colour="blue")
    assert compile_mock(_net(max_spikes=None), t_max=T_MAX).auto_buffers  # sized automatically (test_auto_buffers)
    with pytest.raises(TargetError, match="MockConfig"):
        compile_mock(_net(), mock="ideal")
    with pytest.raises(TargetError, match="t_max"):
        compile_mock(_net(), t_max=-1.0)
    with pytest.raises(InputError, match="t_max"):
        compile_mock(_net()).run(_inputs())
    net = snncomp.Network("delayed")
    x = net.input("x", 2)
    h = net.lif("h", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=np.ones((2, 2)), delay=1e-3)
    with pytest.raises(PassError, match="no programmable synaptic delay"):
        compile_mock(net.build(), t_max=T_MAX)


def test_report_shows_resources_settings_and_health(exe: MockExecutable) -> None:
    exe.run(_inputs())
    report = exe.report()
    assert isinstance(report, Report) and report.target == "bss2-mock"
    text = str(report)
    for part in ("BrainScaleS-2 resources", "PADI bus", "mock ideal", "health of the last run: delayed=", "1: initial"):
        assert part in text, part
    assert report.buffers == {"h": 12, "o": 3}
    assert isinstance(exe.health, MockHealth) and exe.health.delayed.shape == (3,)


def test_new_weights_are_requantized_into_the_existing_routing() -> None:
    net = _net(seed=3)
    exe = compile_mock(net, t_max=T_MAX)
    scaled = {"weight": {k: 0.8 * v for k, v in exe.params["weight"].items()}, "delay": exe.params["delay"]}
    inputs = _inputs(batch=4, seed=2)
    rec = exe.run(inputs, scaled)
    assert exe.n_placements == 1
    edges = tuple(e.model_copy(update={"weight": e.weight * 0.8}) for e in exe.network.edges)
    fresh = compile_mock(exe.network.replace(edges=edges), t_max=T_MAX)
    want = fresh.run(inputs)
    for pop in want.spikes:
        np.testing.assert_array_equal(np.asarray(rec.spikes[pop].times), np.asarray(want.spikes[pop].times))
        np.testing.assert_array_equal(np.asarray(rec.spikes[pop].neurons), np.asarray(want.spikes[pop].neurons))
    config = exe.hardware_config(scaled)
    np.testing.assert_array_equal(config.synapse_weights(), fresh.lowered.synapse_weights())
    # The projection map's per-synapse weights agree with the rows (they were left at the compiled ones).
    array = config.synapse_weights()
    for key, pm in config.projections.items():
        np.testing.assert_array_equal(pm.weight, array[pm.hemisphere, pm.row, pm.column], err_msg=key)
        assert pm.weight == fresh.lowered.projections[key].weight
    original = compile_mock(net, t_max=T_MAX).lowered
    np.testing.assert_array_equal(exe.lowered.synapse_weights(), original.synapse_weights())


def test_saturated_and_lost_weights_are_counted_or_replaced() -> None:
    exe = compile_mock(_net(seed=4), t_max=T_MAX, signs="used")
    big = {"weight": {k: 3.0 * v for k, v in exe.params["weight"].items()}, "delay": exe.params["delay"]}
    _, health = exe.run_with_health(_inputs(), big)
    assert int(health.saturated) > 0 and int(health.lost) == 0 and exe.n_placements == 1
    flipped = {"weight": {k: -v for k, v in exe.params["weight"].items()}, "delay": exe.params["delay"]}
    _, health = exe.run_with_health(_inputs(), flipped)
    assert exe.n_placements == 2  # signs=used has no synapse for the new sign: placed and routed again
    assert int(health.lost) == 0
    assert "placement 2: redone" in str(exe.report())
    exe.run(_inputs())  # the original weights fit the first placement again: it is reused, not redone
    assert exe.n_placements == 2 and "back to placement 1" in str(exe.report())
    # Inside jax.grad the routing cannot change: the weights without a synapse are dropped and counted.
    exe2 = compile_mock(_net(seed=4), t_max=T_MAX, signs="used")

    def lost(p: dict) -> jax.Array:
        _, h = exe2.run_with_health(_inputs(), p)
        return h.lost

    assert int(jax.jit(lost)(flipped)) > 0
    assert exe2.n_placements == 1


def test_apply_is_run_and_differentiable_wrt_params(exe: MockExecutable) -> None:
    inputs = _inputs()

    def loss(p: dict) -> jax.Array:
        t = exe.apply(p, inputs).spikes["o"].to_first_spike_times(3)
        return jnp.sum(jnp.where(jnp.isfinite(t), t, 0.0))

    value, grads = jax.value_and_grad(loss)(exe.params)
    t = exe.run(inputs).spikes["o"].to_first_spike_times(3)
    assert float(value) == pytest.approx(float(jnp.sum(jnp.where(jnp.isfinite(t), t, 0.0))))
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(exe.params)


def test_overflow_is_flagged_or_raised() -> None:
    exe = compile_mock(_net(hidden=6, w_in=1.05, max_spikes=None), t_max=T_MAX, spikes_per_neuron=1)
    t = np.linspace(0.0, 8e-3, 24).reshape(1, 24)
    busy = {"x": snncomp.Spikes.from_lists(list(t), [list(np.arange(24) % 4)])}
    rec = exe.run(busy)
    assert np.asarray(rec.overflow["h"]).all() and not np.asarray(rec.overflow["o"]).any()
    assert int(rec.spikes["h"].count()[0]) == 6  # the buffer is full, nothing was lost silently
    with pytest.raises(BufferOverflowError, match="readout buffer of 6"):
        exe.run(busy, on_overflow="raise")


def test_float64_needs_x64() -> None:
    with pytest.raises(TargetError, match="64-bit"):
        compile_mock(_net(), t_max=T_MAX, dtype="float64")
    with jax.enable_x64(True):
        exe = compile_mock(_net(), t_max=T_MAX, dtype="float64", mock=MockConfig.realistic())
        rec = exe.run(_inputs())
        assert rec.spikes["o"].times.dtype == jnp.float64


def test_snncomp_compile_reaches_the_mock() -> None:
    import snncomp
    from snncomp.targets.bss2.mock import MockExecutable

    net = snncomp.Network("tiny")
    x = net.input("x", 2)
    h = net.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=1.5)
    exe = snncomp.compile(net, target="bss2-mock", t_max=0.02)
    assert isinstance(exe, MockExecutable)
    rec = exe.run({"x": snncomp.Spikes.from_lists([[1e-3, 2e-3]], [[0, 1]])})
    assert set(rec.spikes) == {"h"}
