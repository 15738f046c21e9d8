"""The emulator follows the configuration: its event tables are the chip's realised connectivity, and a
corrupted configuration (one synapse label or one driver's row mask changed) changes its output exactly
as the realised connectivity says -- spikes go where the configuration sends them, not where the network
meant them to go."""

from __future__ import annotations

from collections import Counter
from typing import Any

import jax
import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from strategies import networks
from test_mock_equivalence import T_MAX, cases

import snncomp
from snncomp.ir import Edge, Network
from snncomp.passes import PassManager
from snncomp.targets.bss2 import HardwareConfig, dequantized_network, realise
from snncomp.targets.bss2.mock import MockConfig, compile_mock, event_tables

fitting = networks(max_size=12, max_inputs=2, max_neuron_pops=3, delays=False)


def _contacts_from_tables(config: HardwareConfig) -> set[tuple]:
    tables = event_tables(config)
    chip = config.chip
    R, C = chip.rows_per_hemisphere, chip.columns
    names = []
    for k in tables.neuron_ids:
        n = config.neurons[int(k)]
        names.append((n.population, n.index))
    for e_idx, _label in tables.external_source:
        e = config.external[e_idx]
        names.append((e.population, e.index))
    out = set()
    for lane, syn, neuron, sign in zip(
        tables.contact_lane, tables.contact_synapse, tables.contact_neuron, tables.contact_sign
    ):
        h, rest = divmod(int(syn), R * C)
        r, c = divmod(rest, C)
        target = config.neurons[int(tables.neuron_ids[neuron])]
        out.add((names[int(tables.lane_source[lane])], (target.population, target.index), int(sign), h, r, c))
    return out


def _contacts_from_realise(config: HardwareConfig) -> set[tuple]:
    real = realise(config)
    owner = config.circuit_owner()
    k = real.contacts
    out = set()
    for h, r, c, src, sign in zip(k["h"], k["r"], k["c"], k["src"], k["sign"]):
        n = owner[h, c]
        if n < 0 or not config.neurons[n].fire:
            continue  # a readout (li) or empty circuit: not simulated
        t = config.neurons[n]
        out.add((real.sources[src], (t.population, t.index), int(sign), int(h), int(r), int(c)))
    return out


def _corrupt(config: HardwareConfig, rng: np.random.Generator) -> tuple[HardwareConfig, str]:
    """Change one synapse label of a mapped synapse (to another value) or one used driver's row mask."""
    # Corrupt where it matters: a synapse (or a driver of a row) carrying a non-zero weight.
    mapped = [p for p in config.projections.values() if any(w > 0 for w in p.weight)]
    if not mapped:
        mapped = [p for p in config.projections.values() if p.pre]
    if rng.integers(2) == 0 and mapped:
        pm = mapped[rng.integers(len(mapped))]
        live = [k for k, w in enumerate(pm.weight) if w > 0] or list(range(len(pm.pre)))
        i = int(live[rng.integers(len(live))])
        h, r, c = pm.hemisphere[i], pm.row[i], pm.column[i]
        rows = list(config.rows)
        k = next(j for j, row in enumerate(rows) if (row.hemisphere, row.row) == (h, r))
        labels = bytearray(bytes.fromhex(rows[k].labels))
        labels[c] = (labels[c] + 1 + int(rng.integers(62))) % 64
        rows[k] = rows[k].model_copy(update={"labels": labels.hex()})
        return config.model_copy(update={"rows": tuple(rows)}), f"label of h{h} row {r} column {c}"
    drivers = list(config.drivers)
    weighted = {(h, r // 2) for p in config.projections.values() for h, r, w in zip(p.hemisphere, p.row, p.weight) if w}
    live = [k for k, d in enumerate(drivers) if (d.hemisphere, d.driver) in weighted] or list(range(len(drivers)))
    j = int(live[rng.integers(len(live))])
    # Flip one bit, or accept every row select on the bus (0), or only the driver's own index (31).
    mask = [(drivers[j].row_mask ^ (1 << int(rng.integers(5)))) & 31, 0, 31][int(rng.integers(3))]
    drivers[j] = drivers[j].model_copy(update={"row_mask": mask})
    return config.model_copy(update={"drivers": tuple(drivers)}), f"row mask of driver {drivers[j].driver}"


def _realised_network(config: HardwareConfig, neurons: Network) -> Network:
    """The network the chip realises from ``config`` alone: one projection per (source, target) population pair."""
    sizes = {n.name: n.size for n in neurons.nodes}
    weights: dict[tuple[str, str], np.ndarray] = {}
    for src, tgt, sign, h, r, c in _contacts_from_realise(config):
        w = float(config.synapse_weights()[h, r, c]) / config.weight_scale
        m = weights.setdefault((src[0], tgt[0]), np.zeros((sizes[src[0]], sizes[tgt[0]])))
        m[src[1], tgt[1]] += -w if sign else w
    edges = tuple(Edge(source=s, target=t, weight=m) for (s, t), m in sorted(weights.items()))
    return neurons.replace(edges=edges)


@given(fitting, st.integers(0, 2**31 - 1), st.booleans())
@settings(max_examples=15)
def test_event_tables_are_the_realised_connectivity(net: Network, seed: int, corrupt: bool) -> None:
    config: HardwareConfig = PassManager(str(snncomp.pipeline("bss2"))).run(net).annotations["hardware_config"]
    if corrupt:
        config, what = _corrupt(config, np.random.default_rng(seed))
        note(what)
    assert _contacts_from_tables(config) == _contacts_from_realise(config)


def _run_corrupted(case: tuple, seed: int, tally: Counter) -> None:
    net, inputs, tick = case
    with jax.enable_x64(True):
        spikes = {k: snncomp.Spikes(times=t, neurons=n.astype(np.int32)) for k, (t, n) in inputs.items()}
        exe = compile_mock(net, t_max=T_MAX, spikes_per_neuron=6, dtype="float64", mock=MockConfig.ideal())
        config, what = _corrupt(exe.lowered, np.random.default_rng(seed))
        note(what)
        if any(v.check == 12 for v in realise(config).violations):
            tally["skipped: two sources on one synapse"] += 1
            return
        bad = exe.with_config(config)
        rec_m, health = bad.run_with_health(spikes)
        realised = _realised_network(config, dequantized_network(exe.compile_result))
        ref = snncomp.compile(realised, t_max=T_MAX, spikes_per_neuron=6, dtype="float64").run(spikes)
        intended = exe.run(spikes)
    for b in range(np.asarray(health.delayed).shape[0]):
        if float(np.asarray(health.grazing)[b]) < 1e-5 or int(np.asarray(health.delayed)[b]):
            tally["excluded"] += 1
            continue
        for pop in ref.spikes:
            tj, nj = np.asarray(ref.spikes[pop].times)[b], np.asarray(ref.spikes[pop].neurons)[b]
            tm, nm = np.asarray(rec_m.spikes[pop].times)[b], np.asarray(rec_m.spikes[pop].neurons)[b]
            for j in sorted(set(nj[nj >= 0].tolist()) | set(nm[nm >= 0].tolist())):
                a, m = np.sort(tj[nj == j]), np.sort(tm[nm == j])
                assert len(a) == len(m), (what, pop, b, j, a, m)
                lag = (a - m) / tick
                assert np.all(lag > -1e-6) and np.all(lag < 1 + 1e-6), (what, pop, b, j, lag)
            changed = not np.array_equal(np.asarray(intended.spikes[pop].times)[b], tm)
            tally["changed"] += int(changed)
        tally["compared"] += 1


def test_a_corrupted_configuration_misroutes_spikes_as_realised() -> None:
    tally: Counter = Counter()

    @settings(max_examples=6, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(cases(feedforward=True), st.integers(0, 2**31 - 1))
    def check(case: tuple, seed: int) -> None:
        _run_corrupted(case, seed, tally)

    check()
    print(f"corrupted configurations: {dict(tally)}")
    assert tally["compared"] > 0 and tally["changed"] > 0, tally


def _one_synapse() -> Network:
    net = snncomp.Network("one")
    x = net.input("x", 2)
    # A jump of the synaptic input by w lifts the membrane to at most w / 2 (tau_mem = 2 tau_syn):
    # x[0] alone (1.05) fires o, x[1] alone (0.6) does not.
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3, v_threshold=0.4, max_spikes=1)
    net.connect(x, o, weight=np.array([[1.05], [0.6]]))
    return net.build()


def _first(exe: Any, t: float = 1e-3) -> float:
    x = snncomp.Spikes.from_lists([[t, t + 0.5e-3]], [[0, 1]])
    return float(exe.run({"x": x}).spikes["o"].to_first_spike_times(1)[0, 0])


def test_a_wrong_label_or_row_mask_silences_or_misroutes() -> None:
    exe = compile_mock(_one_synapse(), t_max=20e-3, signs="used")
    config = exe.lowered
    assert np.isfinite(_first(exe))
    pm = config.projections["x->o"]
    h, r0, c = pm.hemisphere[0], pm.row[0], pm.column[0]  # x[0] -> o
    r1 = pm.row[1]  # x[1] -> o
    rows = {(row.hemisphere, row.row): row for row in config.rows}

    def with_labels(changes: dict[int, int]) -> HardwareConfig:
        new = []
        for key, row in rows.items():
            labels = bytearray(bytes.fromhex(row.labels))
            if key[0] == h and key[1] in changes:
                labels[c] = changes[key[1]]
            new.append(row.model_copy(update={"labels": labels.hex()}))
        return config.model_copy(update={"rows": tuple(new)})

    label0 = bytes.fromhex(rows[(h, r0)].labels)[c]
    label1 = bytes.fromhex(rows[(h, r1)].labels)[c]
    # x[0]'s synapse now listens to a label nobody sends: o only gets x[1] (too weak to fire).
    unused = next(v for v in range(64) if v not in (label0, label1))
    assert not np.isfinite(_first(exe.with_config(with_labels({r0: unused}))))
    # Swapped labels: x[0]'s spike meets the 0.6 synapse and x[1]'s the 1.05 one.
    swapped = _first(exe.with_config(with_labels({r0: label1, r1: label0})))
    want_net = _one_synapse().replace(
        edges=(_one_synapse().edges[0].model_copy(update={"weight": np.array([[0.6], [1.05]])}),)
    )
    assert swapped == _first(compile_mock(want_net, t_max=20e-3, signs="used"))
    assert swapped != _first(exe)
    # A driver whose row mask no longer accepts its group's row select: its rows stay dark.
    drv = next(d for d in config.drivers if d.hemisphere == h and d.driver == r0 // 2)
    dark = config.model_copy(
        update={"drivers": tuple(d.model_copy(update={"row_mask": 31}) if d == drv else d for d in config.drivers)}
    )
    # (exact match: the driver keeps its rows only if its bus index happens to equal the row select)
    reaches = any(src == ("x", 0) for src, *_ in _contacts_from_realise(dark))
    assert np.isfinite(_first(exe.with_config(dark))) == reaches
