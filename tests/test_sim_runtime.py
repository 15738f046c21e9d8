"""The shared runtime on the jax target: Spikes, compile, run, validation, overflow, traces, report, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.errors import TargetError
from snncomp.runtime import BufferOverflowError, InputError, register_target, targets


def _ff(max_spikes: int | None = 1) -> snncomp.ir.Network:
    net = snncomp.Network("ff")
    x = net.input("x", 4)
    h = net.lif("h", 6, tau_mem=10e-3, tau_syn=5e-3, max_spikes=max_spikes)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(2.0, 0.5, seed=0))
    net.connect(h, o, init=snncomp.init.normal(1.5, 0.3, seed=1), delay=1e-3)
    return net.build()


def _recurrent() -> snncomp.ir.Network:
    net = snncomp.Network("rec")
    x = net.input("x", 3)
    r = net.lif("r", 5, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)
    net.connect(x, r, weight=np.full((3, 5), 3.0))
    net.connect(r, r, weight=np.full((5, 5), 0.5), delay=0.5e-3)
    return net.build()


@pytest.fixture(scope="module")
def ff_exe() -> snncomp.Executable:
    return snncomp.compile(_ff(), t_max=0.05)


def _inputs(batch: int = 3, events: int = 6, seed: int = 0) -> dict[str, snncomp.Spikes]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 5e-3, (batch, events))
    n = rng.integers(0, 4, (batch, events))
    return {"x": snncomp.Spikes.from_lists(list(t), list(n))}


# ------------------------------------------------------------------ Spikes


def test_spikes_from_lists_sorts_and_pads() -> None:
    s = snncomp.Spikes.from_lists([[3e-3, 1e-3], [2e-3]], [[1, 0], [2]])
    assert s.batch_shape == (2,) and s.capacity == 2
    assert np.asarray(s.times).tolist()[1][1] == np.inf
    assert np.asarray(s.neurons).tolist() == [[0, 1], [2, -1]]
    back = s.to_lists()
    assert [n for _, n in back] == [[0, 1], [2]]
    assert np.allclose(back[0][0], [1e-3, 3e-3]) and np.allclose(back[1][0], [2e-3])
    one = snncomp.Spikes.from_lists([2e-3, 1e-3], [5, 4], capacity=4)
    assert one.batch_shape == () and one.capacity == 4
    assert np.asarray(one.count()) == 2
    with pytest.raises(InputError, match="capacity=1 is smaller"):
        snncomp.Spikes.from_lists([1.0, 2.0], [0, 1], capacity=1)
    with pytest.raises(InputError, match="2 times but 1 neuron"):
        snncomp.Spikes.from_lists([1.0, 2.0], [0])


def test_spikes_first_spike_time_round_trip() -> None:
    first = np.array([[2e-3, np.inf, 1e-3], [np.nan, 5e-3, 5e-3]])
    s = snncomp.Spikes.from_first_spike_times(first)
    assert np.asarray(s.neurons).tolist() == [[2, 0, -1], [1, 2, -1]]
    back = np.asarray(s.to_first_spike_times(3))
    assert np.array_equal(back, np.where(np.isnan(first), np.inf, first).astype(back.dtype))


# ------------------------------------------------------------------ compile


def test_unknown_and_unavailable_targets() -> None:
    with pytest.raises(TargetError, match="real BrainScaleS-2 hardware"):
        snncomp.compile(_ff(), target="bss2")
    with pytest.raises(TargetError, match=r"unknown target 'jaxx'.*did you mean 'jax'"):
        snncomp.compile(_ff(), target="jaxx")
    with pytest.raises(TargetError, match="no option 'tmax'"):
        snncomp.compile(_ff(), tmax=1.0)
    with pytest.raises(TargetError, match="t_max must be a finite time"):
        snncomp.compile(_ff(), t_max=-1.0)
    with pytest.raises(TargetError, match="jax_enable_x64"):
        snncomp.compile(_ff(), dtype="float64")
    with pytest.raises(TargetError, match=r"takes an snncomp\.ir\.Network"):
        snncomp.compile("net.json")
    assert "jax" in targets()


def test_target_registry_extension_point() -> None:
    calls = []

    def factory(net: snncomp.ir.Network, **options: object) -> str:
        calls.append((net.name, options))
        return "fake"

    register_target("fake-target", factory)
    assert snncomp.compile(_ff(), target="fake-target", x=1) == "fake"
    assert calls == [("ff", {"x": 1})]


def test_unbounded_population_is_sized_automatically_or_by_spikes_per_neuron() -> None:
    assert snncomp.compile(_recurrent(), t_max=0.05).report().buffers == {"r": 40}  # 8 per neuron
    exe = snncomp.compile(_recurrent(), t_max=0.05, spikes_per_neuron=4)
    assert exe.report().buffers == {"r": 20}


def test_params_and_report(ff_exe: snncomp.Executable) -> None:
    assert set(ff_exe.params["weight"]) == {"x->h", "h->o"}
    assert ff_exe.params["weight"]["x->h"].shape == (4, 6)
    assert ff_exe.params["weight"]["x->h"].dtype == jnp.float32
    assert float(ff_exe.params["delay"]["h->o"]) == pytest.approx(1e-3)
    text = str(ff_exe.report())
    assert "layer-parallel" in text and "buffers (spikes per sample): h=6, o=2" in text
    assert "solver=quadratic" in text
    lowered = ff_exe.lowered
    assert type(lowered).__name__ == "EventProgram"
    assert "LayerParallelStage" in repr(lowered)


# ------------------------------------------------------------------ run


def test_run_batched_unbatched_and_one_trace_per_shape() -> None:
    exe = snncomp.compile(_ff(), t_max=0.05)
    batch = _inputs(3)
    rec = exe.run(batch)
    assert rec.spikes["o"].times.shape == (3, 2)
    assert rec.overflow["o"].shape == (3,)
    # Same shapes, other values, other params, other t_max: no retrace.
    exe.run(_inputs(3, seed=1))
    exe.run(batch, jax.tree_util.tree_map(lambda w: w * 1.1, exe.params))
    exe.run(batch, t_max=0.02)
    assert exe.n_traces == 1
    # One sample (no batch axis) is a new shape: one more trace, and the same result as row 0.
    single = {"x": snncomp.Spikes(times=batch["x"].times[0], neurons=batch["x"].neurons[0])}
    rec1 = exe.run(single)
    assert exe.n_traces == 2
    assert np.array_equal(np.asarray(rec1.spikes["o"].times), np.asarray(rec.spikes["o"].times[0]))
    # Two batch axes.
    t = jnp.stack([batch["x"].times, batch["x"].times])
    n = jnp.stack([batch["x"].neurons, batch["x"].neurons])
    rec2 = exe.run({"x": snncomp.Spikes(times=t, neurons=n)})
    assert rec2.spikes["h"].times.shape == (2, 3, 6)


def test_unsorted_inputs_give_the_same_result(ff_exe: snncomp.Executable) -> None:
    inp = _inputs(2, 8, seed=3)["x"]
    perm = np.random.default_rng(0).permutation(8)
    shuffled = snncomp.Spikes(times=np.asarray(inp.times)[:, perm], neurons=np.asarray(inp.neurons)[:, perm])
    a = ff_exe.run({"x": inp}).spikes["h"]
    b = ff_exe.run({"x": shuffled}).spikes["h"]
    assert np.array_equal(np.asarray(a.times), np.asarray(b.times))


def test_results_sorted_and_within_window(ff_exe: snncomp.Executable) -> None:
    rec = ff_exe.run(_inputs(4, seed=5), t_max=6e-3)
    for sp in rec.spikes.values():
        t = np.asarray(sp.times)
        fin = np.where(np.isfinite(t), t, 1e9)
        assert np.all(np.diff(fin, axis=-1) >= 0)
        assert np.all(t[np.isfinite(t)] < 6e-3)
        assert np.array_equal(np.isinf(t), np.asarray(sp.neurons) == -1)


def test_inputs_at_or_after_t_max_are_ignored(ff_exe: snncomp.Executable) -> None:
    base = snncomp.Spikes.from_lists([[1e-3, 2e-3]], [[0, 1]], capacity=4)
    late = snncomp.Spikes.from_lists([[1e-3, 2e-3, 10e-3, 10.0]], [[0, 1, 2, 3]])
    a = ff_exe.run({"x": base}, t_max=10e-3)
    b = ff_exe.run({"x": late}, t_max=10e-3)
    for k in a.spikes:
        assert np.array_equal(np.asarray(a.spikes[k].times), np.asarray(b.spikes[k].times))


def test_bad_inputs_are_rejected_with_clear_messages(ff_exe: snncomp.Executable) -> None:
    good = _inputs(2)["x"]
    t, n = np.asarray(good.times).copy(), np.asarray(good.neurons).copy()

    def run(times: np.ndarray, neurons: np.ndarray, name: str = "x") -> None:
        ff_exe.run({name: snncomp.Spikes(times=times, neurons=neurons)})

    bad = n.copy()
    bad[1, 2] = 4
    with pytest.raises(
        InputError, match=r"inputs\['x'\]: neuron index 4 out of range \[0, 4\) at sample \[1\], event 2"
    ):
        run(t, bad)
    bad_t = t.copy()
    bad_t[0, 1] = -1e-3
    with pytest.raises(InputError, match=r"inputs\['x'\]: spike time -0.001 s at sample \[0\], event 1 is negative"):
        run(bad_t, n)
    bad_t = t.copy()
    bad_t[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        run(bad_t, n)
    bad_t = t.copy()
    bad_t[0, 0] = np.inf
    with pytest.raises(InputError, match="not finite"):
        run(bad_t, n)
    pad = n.copy()
    pad[0, 0] = -1
    with pytest.raises(InputError, match="padding must have time"):
        run(t, pad)
    with pytest.raises(InputError, match=r"'xx' \(did you mean 'x'\?\) is not an input population of 'ff'"):
        ff_exe.run({"x": good, "xx": good})
    with pytest.raises(InputError, match="no spikes given for input population"):
        ff_exe.run({})
    with pytest.raises(InputError, match=r"expected snncomp\.Spikes"):
        ff_exe.run({"x": (t, n)})
    with pytest.raises(InputError, match="same shape"):
        run(t, n[:, :2])
    with pytest.raises(InputError, match="t_max must be"):
        ff_exe.run({"x": good}, t_max=float("nan"))
    with pytest.raises(InputError, match="on_overflow"):
        ff_exe.run({"x": good}, on_overflow="ignore")
    with pytest.raises(InputError, match=r"params\['weight'\]\['x->h'\]: expected shape \[4, 6\]"):
        ff_exe.run({"x": good}, {"weight": {"x->h": np.zeros((6, 4)), "h->o": np.zeros((6, 2))}, "delay": {}})
    params = dict(ff_exe.params)
    params["delay"] = {"x->h": -1.0, "h->o": 0.0}
    with pytest.raises(InputError, match="delay must be finite and >= 0"):
        ff_exe.run({"x": good}, params)


def test_batch_shapes_must_agree() -> None:
    net = snncomp.Network("two")
    a = net.input("a", 2)
    b = net.input("b", 2)
    h = net.lif("h", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(a, h, weight=1.0)
    net.connect(b, h, weight=1.0)
    exe = snncomp.compile(net.build(), t_max=0.01)
    sa = snncomp.Spikes.from_lists([[1e-3], [2e-3]], [[0], [1]])
    sb = snncomp.Spikes.from_lists([1e-3], [0])
    with pytest.raises(
        InputError, match=r"inputs\['b'\]: batch shape \[\] differs from inputs\['a'\] batch shape \[2\]"
    ):
        exe.run({"a": sa, "b": sb})


def test_no_run_without_t_max() -> None:
    exe = snncomp.compile(_ff())
    with pytest.raises(InputError, match="no simulated window"):
        exe.run(_inputs())
    rec = exe.run(_inputs(), t_max=0.02)
    assert rec.spikes["o"].times.shape == (3, 2)


# ------------------------------------------------------------------ overflow


def test_overflow_flagged_per_sample_and_raised() -> None:
    exe = snncomp.compile(_recurrent(), t_max=0.05, spikes_per_neuron=2)
    quiet = snncomp.Spikes.from_lists([[]], [[]], capacity=2)
    loud = snncomp.Spikes.from_lists([[0.0, 1e-3]], [[0, 1]])
    inp = snncomp.Spikes(
        times=jnp.concatenate([quiet.times, loud.times]), neurons=jnp.concatenate([quiet.neurons, loud.neurons])
    )
    rec = exe.run({"x": inp})
    assert np.asarray(rec.overflow["r"]).tolist() == [False, True]
    assert np.asarray(rec.any_overflow()).tolist() == [False, True]
    # The buffer is full up to the overflowing spike; nothing silently dropped before it.
    assert int(np.asarray(rec.spikes["r"].count())[1]) == 10
    with pytest.raises(
        BufferOverflowError, match=r"population 'r' .* buffer of 10 \(5 neurons x 2 spikes\).*spikes_per_neuron"
    ):
        exe.run({"x": inp}, on_overflow="raise")
    big = snncomp.compile(_recurrent(), t_max=0.05, spikes_per_neuron=50)
    rec = big.run({"x": inp}, on_overflow="raise")
    assert not np.asarray(rec.overflow["r"]).any()
    assert int(np.asarray(rec.spikes["r"].count())[1]) > 10


# ------------------------------------------------------------------ traces


def test_traces_match_closed_form_and_spikes() -> None:
    net = snncomp.Network("tr")
    x = net.input("x", 1)
    n = net.lif("n", 1, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3, max_spikes=1)
    r = net.li("r", 1, tau_mem=10e-3, tau_syn=5e-3, v_leak=0.2)
    net.connect(x, n, weight=5.0)
    net.connect(n, r, weight=1.0)
    grid = np.linspace(0.0, 0.02, 41)
    with jax.enable_x64(True):
        exe = snncomp.compile(net.build(), t_max=0.02)
        rec = exe.run({"x": snncomp.Spikes.from_lists([0.0], [0])}, trace_times=grid)
        t_spike = float(rec.spikes["n"].times[0])
        v = np.asarray(rec.traces["n"].v)[:, 0]
        i = np.asarray(rec.traces["n"].i)[:, 0]
        vr = np.asarray(rec.traces["r"].v)[:, 0]
    x1 = np.exp(-grid / 10e-3)
    before = grid < t_spike
    assert np.allclose(i, 5.0 * x1**2, rtol=1e-12)
    assert np.allclose(v[before], 5.0 * (x1 - x1**2)[before], rtol=1e-12, atol=1e-14)
    assert np.all(v[before] < 1.0)
    held = (grid >= t_spike) & (grid <= t_spike + 1e-3)
    assert held.any() and np.all(v[held] == 0.0)
    # The readout rests at v_leak until the spike arrives.
    assert np.all(vr[grid <= t_spike] == 0.2)
    assert vr[-1] > 0.2
    assert exe.n_traces == 1


def test_traces_inside_jit_and_grad() -> None:
    # A loss on the membrane trace (e.g. a margin below threshold) runs inside jit with a constant
    # host grid, and its gradient reaches the weights.
    net = snncomp.Network("tr")
    x = net.input("x", 1)
    net.lif("n", 1, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, "n", weight=0.5)
    exe = snncomp.compile(net.build(), t_max=0.02)
    grid = np.linspace(0.0, 0.02, 41)
    inputs = {"x": snncomp.Spikes.from_lists([0.0], [0])}

    def peak(params: dict) -> jax.Array:
        return jnp.max(exe.apply(params, inputs, trace_times=grid, trace_populations=("n",)).traces["n"].v)

    value, grad = jax.jit(jax.value_and_grad(peak))(exe.params)
    assert 0 < float(value) < 1  # subthreshold
    # The trace is linear in the weight below threshold: d peak / d w = peak / w.
    assert np.isclose(float(grad["weight"]["x->n"][0, 0]), float(value) / 0.5, rtol=1e-5)


# ------------------------------------------------------------------ CLI


def test_cli_run(tmp_path) -> None:
    net_file = tmp_path / "net.json"
    snncomp.ir.save(_ff(), net_file)
    inp = tmp_path / "in.json"
    inp.write_text(json.dumps({"x": {"times": [0.0, 1e-3, 0.5e-3], "neurons": [0, 1, 2]}}))
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "snncomp", "run", str(net_file), "--inputs", str(inp), "--t-max", "0.05"]
    res = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert set(data["spikes"]) == {"h", "o"}
    assert data["overflow"] == {"h": False, "o": False}
    assert len(data["spikes"]["h"]["times"]) == len(data["spikes"]["h"]["neurons"])
    inp.write_text(json.dumps({"x": {"times": [0.0], "neurons": [9]}}))
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0
    assert "neuron index 9 out of range" in res.stderr
