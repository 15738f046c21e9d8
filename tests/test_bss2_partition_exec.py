"""Partitioned execution on ``bss2-mock``: one executable, chained gradients, and equivalence with the jax target.

Reference for both the gradients and the equivalence property: the jax target run partition by
partition on each partition's dequantized sub-network, the spikes of one partition fed to the later
ones as the chip's FPGA would (timestamp floored to the 8 ns grid, released on it, plus the inter-chip
latency). It shares no code with the emulator's partitioned runner, only the plan's public tables.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

import snncomp
from snncomp import ir
from snncomp.errors import InputError, TargetError
from snncomp.targets.bss2 import ChipSpec, LatencySkewWarning, PartitionedConfig, dequantized_network
from snncomp.targets.bss2.mock import MockConfig, MockExecutable, PartitionedExecutable, compile_mock

CHIP32 = ChipSpec(columns=16, event_outputs=8, columns_per_event_output=2)  # 32 neuron circuits
CHIP16 = ChipSpec(columns=8, event_outputs=8, columns_per_event_output=1)  # 16 neuron circuits
TICK = 8e-9 * 1000.0  # one FPGA cycle in model seconds (speedup 1000)
T_MAX = 0.03
LIF = {"tau_mem": 10e-3, "tau_syn": 5e-3, "max_spikes": 1}
EXACT = MockConfig(quantize_timestamps=False, rate_limit=False)  # the emulator reduced to the software model


def yinyang(hidden: int = 40) -> ir.Network:
    rng = np.random.default_rng(0)
    net = snncomp.Network("yy")
    x = net.input("x", 8)
    h = net.lif("h", hidden, **LIF)
    o = net.lif("o", 3, **LIF)
    net.connect(x, h, weight=rng.normal(0.9, 0.15, (8, hidden)))
    net.connect(h, o, weight=rng.normal(0.25, 0.2, (hidden, 3)))
    return net.build()


def first_spikes(dtype: str = "float32", batch: int = 3) -> dict[str, snncomp.Spikes]:
    first = np.round(np.random.default_rng(0).uniform(0, 0.01, (batch, 8)) / TICK) * TICK
    return {"x": snncomp.Spikes.from_first_spike_times(first, dtype=dtype)}


def part_params(exe: PartitionedExecutable, params: dict, i: int) -> dict:
    """Partition ``i``'s parameters cut from the whole network's, by the plan's piece table."""
    pieces = [q for q in exe.plan.pieces if q.part == i]
    return {
        "weight": {q.key: params["weight"][q.projection][q.rows[0] : q.rows[1], q.cols[0] : q.cols[1]] for q in pieces},
        "delay": {q.key: params["delay"][q.projection] for q in pieces},
    }


def chained(
    exe: PartitionedExecutable,
    softs: list[Any],
    inputs: dict,
    params: dict | None = None,
    latency: float = 0.0,
    stamp: bool = True,
) -> list[snncomp.Recording]:
    """The reference: the jax target per partition, cut spikes through the FPGA (timestamp floored to the
    grid where ``stamp``, plus the latency, released on the grid; straight through in the gradient: what
    the spikes depend on is the time they were fired)."""
    recs: list[snncomp.Recording] = []
    for i, (soft, sub) in enumerate(zip(softs, exe.plan.parts)):
        feed = {n.name: inputs[n.name] for n in sub.nodes if n.name in inputs}
        for c in (c for c in exe.plan.cuts if c.target_part == i):
            sp = recs[c.source_part].spikes[c.name]
            t = sp.times
            stamped = (jnp.floor(t / TICK) * TICK if stamp else t) + latency
            released = jnp.floor(stamped / TICK + 0.5) * TICK
            feed[c.name] = snncomp.Spikes(
                times=t + jax.lax.stop_gradient(jnp.where(jnp.isfinite(t), released - t, 0.0)), neurons=sp.neurons
            )
        recs.append(soft.run(feed) if params is None else soft.apply(part_params(exe, params, i), feed))
    return recs


def softs_of(exe: PartitionedExecutable, **kw: Any) -> list[Any]:
    return [
        snncomp.compile(dequantized_network(p.compile_result), target="jax", dtype="float64", **kw) for p in exe.parts
    ]


def _wave(t: jax.Array) -> jax.Array:
    finite = jnp.isfinite(t)
    return jnp.sum(jnp.where(finite, jnp.sin(300.0 * jnp.where(finite, t, 0.0)), 0.0))


# -- one executable ----------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _x64() -> Any:
    with jax.enable_x64(True):
        yield


def test_one_executable_with_the_whole_networks_params_recording_report_and_artifact() -> None:
    net = yinyang()
    exe = snncomp.compile(
        net, target="bss2-mock", t_max=T_MAX, chip=CHIP32, max_partitions=3, engine="general", dtype="float64"
    )
    assert isinstance(exe, PartitionedExecutable) and exe.plan.n_parts == 2
    ref = snncomp.compile(net, target="jax", t_max=T_MAX)
    assert {k: v.shape for k, v in exe.params["weight"].items()} == {
        k: v.shape for k, v in ref.params["weight"].items()
    }
    x = first_spikes("float64")
    rec = exe.run(x, trial=0)
    assert set(rec.spikes) == {"h", "o"} and rec.spikes["h"].times.shape == (3, 40)
    t, n = np.asarray(rec.spikes["h"].times), np.asarray(rec.spikes["h"].neurons)
    assert np.all(np.diff(t, axis=-1) >= 0) and set(n[n >= 0].tolist()) <= set(range(40))
    # the split population under its own numbering: each slice's spikes come back offset by its start
    for s in (s for s in exe.plan.slices if s.population == "h"):
        part = exe.parts[s.part].run({"x": x["x"]} if s.part == 0 else _feed(exe, s.part, x, rec), trial=0)
        got = np.asarray(part.spikes[s.name].to_first_spike_times(s.stop - s.start))
        np.testing.assert_array_equal(np.asarray(rec.spikes["h"].to_first_spike_times(40))[:, s.start : s.stop], got)
    (cut,) = exe.plan.cuts
    spikes_cut = int(np.sum((n >= cut.start) & (n < cut.stop)))
    assert spikes_cut > 0 and exe.cut_spikes == {(cut.name, 1): spikes_cut}
    text = str(exe.report())
    assert "partitions: 2 (sequential" in text and f"{spikes_cut} spikes" in text and "-- partition 1: yy.part1" in text
    config = exe.lowered
    assert (
        isinstance(config, PartitionedConfig)
        and PartitionedConfig.model_validate_json(config.model_dump_json()) == config
    )
    # new parameters are split across the partitions: silencing h -> o silences o
    params = jax.tree.map(lambda a: a, exe.params)
    params["weight"]["h->o"] = jnp.zeros_like(params["weight"]["h->o"])
    assert int(np.sum(np.asarray(exe.run(x, params, trial=0).spikes["o"].neurons) >= 0)) == 0
    with pytest.raises(InputError, match="records spikes only"):
        exe.run(x, trace_times=np.array([1e-3]))


def _feed(exe: PartitionedExecutable, i: int, x: dict, rec: snncomp.Recording) -> dict:
    """Partition ``i``'s inputs rebuilt from the whole recording (what it was fed)."""
    feed = {"x": x["x"]}
    for c in (c for c in exe.plan.cuts if c.target_part == i):
        n = rec.spikes[c.population].neurons
        keep = (n >= c.start) & (n < c.stop)
        feed[c.name] = snncomp.Spikes(
            times=jnp.where(keep, rec.spikes[c.population].times, jnp.inf), neurons=jnp.where(keep, n - c.start, -1)
        )
    return feed


def test_a_network_that_fits_compiles_as_before_and_multi_chip_gives_each_partition_its_chip() -> None:
    small = yinyang(20)
    exe = snncomp.compile(small, target="bss2-mock", t_max=T_MAX, chip=CHIP32, max_partitions=3)
    assert type(exe) is MockExecutable
    assert exe.lowered == compile_mock(small, t_max=T_MAX, chip=CHIP32).lowered
    with pytest.warns(LatencySkewWarning):  # o reads both halves of h, one from the other chip
        multi = snncomp.compile(
            yinyang(), target="bss2-mock", t_max=T_MAX, chip=CHIP32, max_partitions=3, chips=2, chip_seed=5,
            mock=MockConfig.realistic(), inter_chip_latency=2e-3,
        )  # fmt: skip
    assert isinstance(multi, PartitionedExecutable)
    assert [p.chip_seed for p in multi.parts] == [5, 6] and multi.lowered.mode == "multi-chip"
    assert multi.lowered.inter_chip_latency == 2e-3
    with pytest.raises(TargetError, match=r"one calibration per chip .* 2 partition\(s\) on 2 chip\(s\), got 1"):
        snncomp.compile(yinyang(), target="bss2-mock", chip=CHIP32, max_partitions=3, chips=2, calibration=[object()])


def test_multi_chip_warns_when_the_latency_shifts_a_neurons_inputs_against_each_other() -> None:
    # h is split over the two chips and o reads both halves: h.0's spikes cross a chip (and take the
    # latency), h.1's do not
    opts = {"t_max": T_MAX, "chip": CHIP32, "max_partitions": 3}
    with pytest.warns(LatencySkewWarning, match=r"o \(0 to 1 chip crossings\).*2e-06 s per crossing"):
        snncomp.compile(yinyang(), target="bss2-mock", chips=2, inter_chip_latency=2e-6, **opts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LatencySkewWarning)
        snncomp.compile(yinyang(), target="bss2-mock", **opts)  # sequential: recorded spikes, no latency
        snncomp.compile(yinyang(), target="bss2-mock", chips=2, inter_chip_latency=0.0, **opts)
    result = snncomp.pipeline("bss2", max_partitions=3, chips=2).run(yinyang(), options={"chip": CHIP32})
    assert any("o (0 to 1 chip crossings)" in r.message for r in result.remarks)


# -- hardware in the loop across partitions ----------------------------------------------------------------------


def test_hil_gradients_chain_exactly_across_partitions() -> None:
    """With the emulator reduced to the software model, ``jax.grad`` through the partitioned run equals
    ``jax.grad`` through the jax target chained the same way (to rounding), and stays close to ``jax.grad``
    on the whole dequantized network (which sees cut spikes at their exact times, not on the 8 ns grid)."""
    exe = snncomp.compile(
        yinyang(), target="bss2-mock", t_max=T_MAX, chip=CHIP32, max_partitions=3, dtype="float64", mock=EXACT,
        engine="general",
    )  # fmt: skip
    x = first_spikes("float64")
    softs = softs_of(exe, t_max=T_MAX)
    whole = snncomp.compile(exe.dequantized_network(), target="jax", t_max=T_MAX, dtype="float64")
    slices = [s for s in exe.plan.slices if s.population == "h"]

    def loss_mock(p: dict) -> jax.Array:
        rec = exe.run(x, p, trial=0)
        return _wave(rec.spikes["o"].to_first_spike_times(3)) + _wave(rec.spikes["h"].to_first_spike_times(40))

    def loss_chain(p: dict) -> jax.Array:
        recs = chained(exe, softs, x, p, stamp=False)  # this emulator records exact times
        h = jnp.concatenate([recs[s.part].spikes[s.name].to_first_spike_times(s.stop - s.start) for s in slices], -1)
        return _wave(recs[-1].spikes["o"].to_first_spike_times(3)) + _wave(h)

    def loss_whole(p: dict) -> jax.Array:
        rec = whole.apply(p, x)
        return _wave(rec.spikes["o"].to_first_spike_times(3)) + _wave(rec.spikes["h"].to_first_spike_times(40))

    assert float(loss_mock(exe.params)) == pytest.approx(float(loss_chain(whole.params)), rel=1e-12)
    g_mock = jax.grad(loss_mock)(exe.params)["weight"]
    g_chain = jax.grad(loss_chain)(whole.params)["weight"]
    g_whole = jax.grad(loss_whole)(whole.params)["weight"]
    for key in g_chain:
        a, b = np.asarray(g_mock[key]), np.asarray(g_chain[key])
        assert np.any(b != 0.0), key
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9 * np.abs(b).max(), err_msg=key)
    a = np.concatenate([np.ravel(g_mock[k]) for k in sorted(g_whole)])
    b = np.concatenate([np.ravel(g_whole[k]) for k in sorted(g_whole)])
    assert a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


# -- equivalence with the jax target -----------------------------------------------------------------------------

BATCH, EVENTS, T_IN, T_EQ, SPN = 6, 10, 8e-3, 12e-3, 6
MARGIN, TOL = 1e-5, 1e-6  # as in tests/test_mock_equivalence.py (TOL in ticks)
_EXAMPLES = max(3, settings().max_examples // 30)


@st.composite
def cases(draw: Any) -> tuple[ir.Network, dict, int, float, str]:
    """Chains x -> p0 -> p1 (-> p2) of 6-12 neurons, some recurrent, on a 16-circuit chip: 2-3 partitions."""
    sizes = draw(st.lists(st.integers(6, 12), min_size=2, max_size=3))
    assume(sum(sizes) > CHIP16.circuits)
    recurrent = draw(st.sets(st.integers(0, len(sizes) - 1), max_size=1))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    net = snncomp.Network("eq")
    prev = x = net.input("x", int(rng.integers(3, 7)))
    for i, n in enumerate(sizes):
        pop = net.lif(f"p{i}", n, tau_mem=10e-3, tau_syn=5e-3, t_refrac=2e-3)
        scale = (0.5, 0.6) if i == 0 else (0.3, 0.5)
        net.connect(prev, pop, weight=np.clip(rng.normal(*scale, (prev.size, n)), -1.0, 1.0))
        if i in recurrent:
            net.connect(pop, pop, weight=rng.normal(0.0, 0.3, (n, n)), mask=rng.random((n, n)) < 0.3)
        prev = pop
    if draw(st.booleans()):
        net.connect(x, prev, weight=rng.uniform(0.0, 0.5, (x.size, prev.size)))
    inputs = {}
    t = np.full((BATCH, EVENTS), np.inf)
    n = np.full((BATCH, EVENTS), -1)
    for b in range(BATCH):
        # distinct release cycles: two inputs in one cycle would queue on the FPGA link
        k = np.sort(rng.choice(int(T_IN / TICK), EVENTS, replace=False))
        t[b], n[b] = k * TICK, rng.integers(0, x.size, EVENTS)
    inputs["x"] = (t, n)
    chips = draw(st.sampled_from([1, 3]))
    latency = draw(st.integers(1, 40)) * TICK if chips > 1 else 0.0
    return net.build(), inputs, chips, latency, draw(st.sampled_from(["fewest-partitions", "fewest-cut-synapses"]))


def _compare(net: ir.Network, inputs: dict, chips: int, latency: float, objective: str, tally: Counter) -> None:
    spikes = {k: snncomp.Spikes(times=t, neurons=n.astype(np.int32)) for k, (t, n) in inputs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LatencySkewWarning)  # the reference below has the latency too
        exe = snncomp.compile(
            net, target="bss2-mock", t_max=T_EQ, spikes_per_neuron=SPN, dtype="float64", mock=MockConfig.ideal(),
            chip=CHIP16, max_partitions=3, chips=chips, inter_chip_latency=latency, objective=objective,
            engine="general",
        )  # fmt: skip
    assert isinstance(exe, PartitionedExecutable) and exe.plan.n_parts in (2, 3)
    rec, health = exe.run_with_health(spikes)
    refs = chained(exe, softs_of(exe, t_max=T_EQ, spikes_per_neuron=SPN), spikes, latency=latency)
    tally["partitions"] += exe.plan.n_parts
    on_edge = np.zeros(BATCH, bool)  # a reference cut spike within TOL of a tick edge: its floor is rounding's call
    for c in exe.plan.cuts:
        t = np.asarray(refs[c.source_part].spikes[c.name].times) / TICK
        t = np.where(np.isfinite(t), t, 0.5)
        on_edge |= np.any(np.abs(t - np.round(t)) < TOL, axis=-1)
    for b in range(BATCH):
        tally["samples"] += 1
        reasons = [
            why
            for why, hit in (
                ("grazing", float(np.asarray(health.grazing)[b]) < MARGIN),
                ("rate limit", int(np.asarray(health.delayed)[b]) + int(np.asarray(health.dropped)[b]) > 0),
                ("overflow", any(bool(np.asarray(v)[b]) for r in (rec, *refs) for v in r.overflow.values())),
                ("cut spike on a tick edge", bool(on_edge[b])),
            )
            if hit
        ]
        assert not bool(np.asarray(health.iteration_limit)[b])
        if reasons:
            tally["excluded"] += 1
            tally.update(f"excluded: {r}" for r in reasons)
            continue
        for s in exe.plan.slices:
            tj = np.asarray(refs[s.part].spikes[s.name].times)[b]
            nj = np.asarray(refs[s.part].spikes[s.name].neurons)[b]
            tm = np.asarray(rec.spikes[s.population].times)[b]
            nm = np.asarray(rec.spikes[s.population].neurons)[b] - s.start
            mine = (nm >= 0) & (nm < s.stop - s.start) & (np.asarray(rec.spikes[s.population].neurons)[b] >= 0)
            note(f"sample {b} {s.name}: jax {list(zip(tj[nj >= 0], nj[nj >= 0]))} mock {list(zip(tm[mine], nm[mine]))}")
            for j in range(s.stop - s.start):
                a, m = np.sort(tj[nj == j]), np.sort(tm[mine & (nm == j)])
                assert len(a) == len(m), (s.name, b, j, a, m)
                lag = (a - m) / TICK  # the timestamp floors: 0 <= lag < 1
                assert np.all(lag > -TOL) and np.all(lag < 1 + TOL), (s.name, b, j, lag)
                tally["spikes"] += len(a)
        tally["compared"] += 1


def test_partitioned_ideal_emulator_equals_the_jax_target_partition_by_partition() -> None:
    tally: Counter = Counter()

    @settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cases())
    def prop(case: tuple) -> None:
        _compare(*case, tally)

    prop()
    print(dict(tally))
    assert tally["compared"] > tally["excluded"] and tally["spikes"] > 0, tally


@pytest.mark.slow
def test_partitioned_equivalence_thorough() -> None:
    tally: Counter = Counter()

    @settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cases())
    def prop(case: tuple) -> None:
        _compare(*case, tally)

    prop()
    print(dict(tally))
    assert tally["compared"] > 2 * tally["excluded"] and tally["spikes"] > 100, tally
