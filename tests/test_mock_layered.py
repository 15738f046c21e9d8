"""The layer-parallel engine of ``bss2-mock`` computes what the general engine computes.

``compile_mock(..., engine="auto")`` runs a feed-forward, single-spike configuration on the layer-parallel
engine (``_layered.py``: bus stages and closed-form layer sweeps) instead of the general event-driven
engine (``_engine.py``). Both read the same ``HardwareConfig``, draw the same trial-to-trial noise from the
same keys and quantize the same way, so on the same inputs and seeds they must agree -- checked here, not
assumed:

- float64, random feed-forward networks of single-spike ``lif`` populations (up to 3 populations of 8, 2
  inputs), inputs crowded into few FPGA cycles so that PADI buses queue (and drop) events, on the ideal
  and the realistic preset (fixed-pattern noise, jitter, threshold noise, readout delay, clock phase):
  every health counter per sample is identical, every recorded spike (neuron and 8 ns timestamp) is
  identical. Excluded (and counted): samples whose grazing value is below ``MARGIN``, where rounding
  decides whether a spike happens and the general engine's cubic estimate of a maximum is only
  accurate to about ``1e-6`` of the threshold distance.
- float32 on a Yin-Yang-sized network (realistic preset): the engines round differently (the layered
  engine is the closer one to float64), so a timestamp may differ by one cycle where the crossing lies
  within rounding of a cycle boundary: at most ``F32_TICK_FLIPS`` of the spikes, never more than one cycle.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import networks

import snncomp
from snncomp.errors import TargetError
from snncomp.ir import Network
from snncomp.targets.bss2.mock import MockConfig, compile_mock

BATCH = 6
EVENTS = 16
T_IN = 8e-3
T_MAX = 14e-3
MARGIN = 1e-5
TICK = 8e-9 * 1000.0  # one FPGA cycle in model seconds at the default speedup
COUNTERS = ("delayed", "dropped", "late", "unrecorded", "over_budget", "iteration_limit")
F32_TICK_FLIPS = 0.005
_EXAMPLES = max(4, settings().max_examples // 6)
_SLOW_EXAMPLES = 30


def _single_spike(net: Network) -> Network:
    return net.replace(nodes=tuple(n.model_copy(update={"max_spikes": 1}) if n.kind == "lif" else n for n in net.nodes))


@st.composite
def cases(draw: Any) -> tuple[Network, dict[str, tuple[np.ndarray, np.ndarray]]]:
    net = draw(
        networks(
            max_size=8,
            max_inputs=2,
            max_neuron_pops=3,
            feedforward=True,
            kinds=("lif",),
            delays=False,
            dtypes=("float64",),
            max_spikes=False,
        )
    )
    gain, shift = draw(st.floats(0.5, 3.0)), draw(st.floats(0.2, 1.0))  # mostly excitatory, some saturated
    net = _single_spike(
        net.replace(edges=tuple(e.model_copy(update={"weight": e.weight * gain + shift}) for e in net.edges))
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    # Few distinct release cycles: inputs collide on their PADI bus and queue; off-grid times are rounded
    # to the grid by the FPGA (both engines alike).
    cycles = rng.choice(int(T_IN / TICK), size=int(rng.integers(1, 5)), replace=False)
    inputs = {}
    for node in net.nodes:
        if node.kind != "input":
            continue
        t = np.full((BATCH, EVENTS), np.inf)
        n = np.full((BATCH, EVENTS), -1)
        for b in range(BATCH):
            real = int(rng.integers(EVENTS // 2, EVENTS + 1))
            t[b, :real] = (rng.choice(cycles, real) + rng.uniform(-0.4, 0.4, real)) * TICK
            n[b, :real] = rng.integers(0, node.size, real)
        inputs[node.name] = (np.clip(t, 0.0, None), n)
    return net, inputs


def _run(net: Network, inputs: dict, mock: MockConfig, engine: str, dtype: str = "float64") -> tuple[Any, Any, Any]:
    exe = compile_mock(net, t_max=T_MAX, mock=mock, engine=engine, dtype=dtype, chip_seed=3, trial_seed=5)
    spikes = {k: snncomp.Spikes(times=t, neurons=n.astype(np.int32)) for k, (t, n) in inputs.items()}
    rec, health = exe.run_with_health(spikes, trial=7)
    return exe, rec, health


def _compare(net: Network, inputs: dict, tally: Counter) -> None:
    with jax.enable_x64(True):
        for name, mock in (("ideal", MockConfig.ideal()), ("realistic", MockConfig.realistic())):
            fast, rec_f, h_f = _run(net, inputs, mock, "auto")
            if not fast.report().schedule.startswith("layer-parallel"):
                # A PADI bus shared by two layers (or a full pending pool) keeps the general engine.
                assert "general engine" in fast.report().schedule and "not applicable" in fast.report().schedule
                tally[f"networks on the general engine ({name})"] += 1
                continue
            tally[f"networks ({name})"] += 1
            _, rec_g, h_g = _run(net, inputs, mock, "general")
            for key in COUNTERS:  # per sample, exactly: the bus model and the readout are the same
                np.testing.assert_array_equal(np.asarray(getattr(h_f, key)), np.asarray(getattr(h_g, key)), key)
            for pop in rec_g.overflow:
                np.testing.assert_array_equal(np.asarray(rec_f.overflow[pop]), np.asarray(rec_g.overflow[pop]))
            for b in range(BATCH):
                tally["samples"] += 1
                if float(np.asarray(h_f.grazing)[b]) < MARGIN:
                    tally["excluded: grazing"] += 1
                    continue
                tally[f"delayed ({name})"] += int(np.asarray(h_f.delayed)[b])
                tally[f"dropped ({name})"] += int(np.asarray(h_f.dropped)[b])
                for pop in rec_g.spikes:
                    tf, nf = np.asarray(rec_f.spikes[pop].times)[b], np.asarray(rec_f.spikes[pop].neurons)[b]
                    tg, ng = np.asarray(rec_g.spikes[pop].times)[b], np.asarray(rec_g.spikes[pop].neurons)[b]
                    _note(f"{name} sample {b} {pop}: layered {list(zip(tf, nf))} general {list(zip(tg, ng))}")
                    assert sorted(zip(tf[nf >= 0], nf[nf >= 0])) == sorted(zip(tg[ng >= 0], ng[ng >= 0])), (
                        name,
                        b,
                        pop,
                    )
                    tally["spikes"] += int(np.sum(nf >= 0))
                tally["compared"] += 1


def _note(text: str) -> None:
    from hypothesis.errors import InvalidArgument

    with contextlib.suppress(InvalidArgument):  # outside a property (a fixed case): the assertion says enough
        note(text)


def _run_property(examples: int) -> Counter:
    tally: Counter = Counter()

    @settings(max_examples=examples, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases())
    def check(case: tuple) -> None:
        _compare(*case, tally)

    check()
    return tally


def _check_tally(tally: Counter) -> None:
    assert tally["compared"] >= 0.75 * tally["samples"], tally
    assert tally["spikes"] > 0, tally
    # Most of these networks (one hemisphere per population, inputs on their own buses) are layered.
    assert tally["networks (ideal)"] >= 2 * tally["networks on the general engine (ideal)"], tally


def test_layered_engine_equals_general_engine() -> None:
    tally = _run_property(_EXAMPLES)
    print(f"layered vs general engine: {dict(tally)}")
    _check_tally(tally)


@pytest.mark.slow
def test_layered_engine_equals_general_engine_thoroughly() -> None:
    tally = _run_property(_SLOW_EXAMPLES)
    print(f"layered vs general engine ({_SLOW_EXAMPLES} networks): {dict(tally)}")
    _check_tally(tally)


def _yinyang_like(hidden: int = 40) -> Network:
    net = snncomp.Network("yy")
    x = net.input("x", 10)
    h = net.lif("h", hidden, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(0.5, 0.4, seed=0))
    net.connect(h, o, init=snncomp.init.normal(0.3, 0.3, seed=1))
    return net.build()


def _yinyang_inputs(batch: int = 32) -> dict[str, snncomp.Spikes]:
    xy = np.random.default_rng(5).uniform(0.0, 1.0, (batch, 2))
    feats = np.concatenate([xy, 1 - xy, np.zeros((batch, 1))], axis=1)
    t = np.repeat(feats * 9e-3, 2, axis=1)  # every input on two channels at the same time: they queue
    return {"x": snncomp.Spikes.from_first_spike_times(t.astype(np.float32))}


def test_float32_engines_differ_at_most_by_a_cycle_at_cycle_boundaries() -> None:
    net, x = _yinyang_like(), _yinyang_inputs()
    runs = {}
    for engine in ("auto", "general"):
        exe = compile_mock(net, t_max=20e-3, mock=MockConfig.realistic(), engine=engine, chip_seed=1)
        runs[engine] = exe.run_with_health(x, trial=3)
    (rec_f, h_f), (rec_g, h_g) = runs["auto"], runs["general"]
    for key in COUNTERS:
        np.testing.assert_array_equal(np.asarray(getattr(h_f, key)), np.asarray(getattr(h_g, key)), key)
    assert int(np.sum(np.asarray(h_f.delayed))) > 0  # the buses really queued
    spikes = flips = 0
    for pop, size in (("h", 40), ("o", 3)):
        a = np.asarray(rec_f.spikes[pop].to_first_spike_times(size))
        b = np.asarray(rec_g.spikes[pop].to_first_spike_times(size))
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))
        fin = np.isfinite(a)
        lag = np.abs(a[fin] - b[fin]) / TICK
        assert np.all((lag < 1e-3) | (np.abs(lag - 1) < 1e-3)), lag.max()
        spikes += int(fin.sum())
        flips += int(np.sum(lag > 0.5))
    assert spikes > 100 and flips <= F32_TICK_FLIPS * spikes, (flips, spikes)


def test_the_engine_is_chosen_from_the_configuration_and_reported() -> None:
    net = _yinyang_like(hidden=6)
    x = _yinyang_inputs(2)
    exe = compile_mock(net, t_max=20e-3)
    exe.run(x)
    assert str(exe.report()).count("layer-parallel engine") == 1
    assert "2 layer(s) of 6+3 neurons" in exe.report().schedule
    # A run longer than the refractory period (max_spikes=1 is 32 us on the chip) is no longer single-spike.
    exe.run(x, t_max=40e-3)
    assert exe.report().schedule.startswith("general engine") and "refractory" in exe.report().schedule
    general = compile_mock(net, t_max=20e-3, engine="general")
    assert "engine='general'" in general.report().schedule
    with pytest.raises(TargetError, match="engine must be one of"):
        compile_mock(net, t_max=20e-3, engine="fast")
    # Recurrent: an event of a neuron reaches itself.
    rec = snncomp.Network("rec")
    xi = rec.input("x", 2)
    h = rec.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    rec.connect(xi, h, weight=np.ones((2, 3)))
    rec.connect(h, h, weight=0.1 * np.ones((3, 3)))
    recurrent = compile_mock(rec.build(), t_max=20e-3)
    assert "recurrent" in recurrent.report().schedule
    with pytest.raises(TargetError, match="engine='layered' cannot run this configuration: recurrent"):
        compile_mock(rec.build(), t_max=20e-3, engine="layered")
    # Multi-spike populations (refractory period shorter than the run) stay on the general engine.
    multi = snncomp.Network("multi")
    xm = multi.input("x", 2)
    hm = multi.lif("h", 3, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)
    multi.connect(xm, hm, weight=np.ones((2, 3)))
    exe_m = compile_mock(multi.build(), t_max=20e-3, spikes_per_neuron=4)
    exe_m.run({"x": snncomp.Spikes.from_lists([[1e-3, 2e-3]], [[0, 1]])})
    assert exe_m.report().schedule.startswith("general engine")


def test_hil_gradients_agree_between_engines() -> None:
    """The backward pass replays the recorded spikes: equal spikes, equal gradients (float64)."""
    net = _yinyang_like(hidden=12)
    with jax.enable_x64(True):
        x = {
            "x": snncomp.Spikes.from_first_spike_times(
                np.asarray(_yinyang_inputs(8)["x"].to_first_spike_times(10), np.float64)
            )
        }
        grads = {}
        for engine in ("auto", "general"):
            exe = compile_mock(net, t_max=20e-3, mock=MockConfig.realistic(), engine=engine, dtype="float64")

            def loss(p: Any, exe: Any = exe) -> Any:
                t = exe.apply(p, x, key=jax.random.PRNGKey(0)).spikes["o"].to_first_spike_times(3)
                return jax.numpy.sum(jax.numpy.where(jax.numpy.isfinite(t), t, 0.0))

            grads[engine] = jax.jit(jax.grad(loss))(exe.params)["weight"]
        for key in grads["general"]:
            np.testing.assert_allclose(
                np.asarray(grads["auto"][key]), np.asarray(grads["general"][key]), rtol=1e-9, atol=1e-12
            )


@pytest.mark.parametrize("typed", [False, True])
def test_first_spike_draws_are_the_noise_tables_first_column(typed: bool) -> None:
    """The layered engine draws only column 0 of the general engine's noise tables: the same numbers."""
    import jax.numpy as jnp

    from snncomp.targets.bss2.mock._engine import EngineOptions, noise_tables
    from snncomp.targets.bss2.mock._layered import _first_draws

    opts = EngineOptions(
        buses=8, bus_queue=8, rate_limit=True, clock_phase=True, record_total=256, noise_slots=8, noisy=True
    )
    noise = jnp.asarray([0.7, 10.0, 0.5], jnp.float32)
    root = jax.random.key(4) if typed else jax.random.PRNGKey(4)
    keys = jax.random.split(root, 16)
    jit_tab, thr_tab = jax.vmap(lambda k: noise_tables(k, 40, noise, opts, jnp.float32))(keys)
    jit0, thr0 = _first_draws(keys, 40, noise, opts, jnp.float32)
    # Equal up to the last bit of the scale (XLA may round a product differently in another program).
    np.testing.assert_allclose(np.asarray(jit0), np.asarray(jit_tab[:, :, 0]), rtol=3e-7, atol=0)
    np.testing.assert_allclose(np.asarray(thr0), np.asarray(thr_tab[:, :, 0]), rtol=3e-7, atol=0)


@pytest.mark.parametrize("events", [40, 700])  # the pairwise form, and the sort beyond _PAIRWISE_MAX
def test_bus_queue_positions_count_the_live_events_before_each_on_its_bus(events: int) -> None:
    import jax.numpy as jnp

    from snncomp.targets.bss2.mock._layered_kernels import _PAIRWISE_MAX, _queue_positions

    assert (events > _PAIRWISE_MAX) == (events == 700)
    rng = np.random.default_rng(events)
    B = 5
    t = rng.integers(0, 30, (events, B)).astype(np.float64)  # many equal times: ties go by index
    t[rng.random((events, B)) < 0.1] = np.inf
    bus = rng.integers(0, 9, (events, B))
    live = np.isfinite(t) & (bus < 8)
    got = np.asarray(_queue_positions(jnp.asarray(t), jnp.asarray(bus), jnp.asarray(live)))
    idx = np.arange(events)
    for b in range(B):
        for e in np.flatnonzero(live[:, b]):
            earlier = (t[:, b] < t[e, b]) | ((t[:, b] == t[e, b]) & (idx < e))
            assert got[e, b] == np.sum(live[:, b] & (bus[:, b] == bus[e, b]) & earlier), (e, b)


def test_a_layer_leaves_out_the_inputs_that_reach_only_later_layers() -> None:
    # x feeds h, s feeds only o (a partition's stand-ins for an earlier partition's neurons): h's sweep
    # leaves out s's events, and the result is the general engine's.
    from snncomp.targets.bss2.mock._io import input_segments
    from snncomp.targets.bss2.mock._layered_kernels import level_rows

    rng = np.random.default_rng(11)
    net = snncomp.Network("standins")
    x, s = net.input("x", 4), net.input("s", 6)
    h = net.lif("h", 6, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=rng.uniform(0.6, 1.6, (4, 6)))
    net.connect(s, o, weight=rng.uniform(0.2, 0.8, (6, 3)))
    net.connect(h, o, weight=rng.uniform(0.2, 0.8, (6, 3)))
    built = net.build()
    inputs = {}
    for name, size in (("x", 4), ("s", 6)):
        t = np.full((BATCH, EVENTS), np.inf)
        n = np.full((BATCH, EVENTS), -1)
        for b in range(BATCH):
            real = int(rng.integers(EVENTS // 2, EVENTS + 1))
            t[b, :real] = rng.choice(6, real) * TICK * 40 + rng.uniform(0, 2e-3, real)
            n[b, :real] = rng.integers(0, size, real)
        inputs[name] = (t, n)
    tally: Counter = Counter()
    _compare(built, inputs, tally)
    assert tally["networks (ideal)"] == tally["networks (realistic)"] == 1, tally  # both layer-parallel
    assert tally["compared"] >= BATCH and tally["spikes"] > 0, tally

    exe = compile_mock(built, t_max=T_MAX, mock=MockConfig.ideal())
    cur = exe._current
    times = {k: t for k, (t, _n) in inputs.items()}
    segments = input_segments(cur, exe._inputs, times)
    assert [c1 - c0 for c0, c1, _h0, _h1 in segments] == [EVENTS, EVENTS]
    lt = cur.layered.tables
    for lv in lt.levels:  # h leaves out s's events, o leaves out x's
        rows = level_rows(lt, lv, 2 * EVENTS, segments)
        assert rows and all(r is not None for r in rows.values())
        stage_rows = {s: (lt.stages[s].nrn.shape[0] + 2 * EVENTS * lt.in_sources.shape[1]) for s in rows}
        assert all(len(r) < stage_rows[s] * lt.stages[s].in_lanes.shape[1] for s, r in rows.items())
