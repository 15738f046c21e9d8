"""The run's health counters: bus congestion (delayed, dropped), late events, spikes beyond a neuron's
budget, spikes that reach no FPGA output -- each provoked on purpose and counted exactly."""

from __future__ import annotations

import numpy as np

import snncomp
from snncomp.targets.bss2.mock import MockConfig, compile_mock

T_MAX = 20e-3
TICK = 8e-9 * 1000.0  # one FPGA cycle in model seconds


def _fan_in(channels: int = 8, max_spikes: int | None = 1, weight: float = 0.6) -> snncomp.ir.Network:
    # With tau_mem = 2 tau_syn a jump of the synaptic input by I lifts the membrane to at most I / 4.
    net = snncomp.Network("fan_in")
    x = net.input("x", channels)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=max_spikes)
    net.connect(x, o, weight=np.full((channels, 2), weight))
    return net.build()


def _burst(channels: int = 8, t: float = 1e-3) -> dict[str, snncomp.Spikes]:
    """Every channel spikes in the same FPGA cycle: all their events want the same PADI bus."""
    return {"x": snncomp.Spikes.from_lists([[t] * channels], [list(range(channels))])}


def test_a_burst_on_one_bus_is_queued_then_dropped() -> None:
    labels = {len(e.labels) for e in compile_mock(_fan_in(), t_max=T_MAX).lowered.external}
    assert labels == {1}  # one event per input spike
    counts = {}
    for name, mock in {
        "queue 8": MockConfig.ideal(),
        "queue 3": MockConfig(bus_queue=3),
        "no limit": MockConfig(rate_limit=False),
    }.items():
        exe = compile_mock(_fan_in(), t_max=T_MAX, mock=mock)
        rec, health = exe.run_with_health(_burst())
        counts[name] = (int(health.delayed[0]), int(health.dropped[0]))
        counts[name + " first"] = float(rec.spikes["o"].to_first_spike_times(2)[0, 0])
    assert counts["queue 8"] == (7, 0)  # one event per cycle: the other seven wait 1..7 cycles
    assert counts["queue 3"] == (3, 4)  # at most three wait; the rest are lost
    assert counts["no limit"] == (0, 0)
    assert counts["no limit first"] < counts["queue 8 first"] < counts["queue 3 first"]


def test_a_grazing_maximum_is_reported() -> None:
    # 8 x 0.5 = 4: the membrane's maximum is exactly the threshold.
    _, health = compile_mock(_fan_in(weight=0.5), t_max=T_MAX, mock=MockConfig(rate_limit=False)).run_with_health(
        _burst()
    )
    assert float(health.grazing[0]) < 1e-6
    _, health = compile_mock(_fan_in(), t_max=T_MAX, mock=MockConfig(rate_limit=False)).run_with_health(_burst())
    assert float(health.grazing[0]) > 1e-3


def test_events_after_the_run_are_discarded_and_counted() -> None:
    net = snncomp.Network("two")
    x = net.input("x", 8)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.tile([[1.0, 0.6]], (8, 1)))  # neuron 0 fires early, neuron 1 late
    net = net.build()
    ideal = compile_mock(net, t_max=T_MAX, mock=MockConfig(rate_limit=False))
    x = _burst()
    t0 = np.asarray(ideal.run(x).spikes["o"].to_first_spike_times(2))[0]
    assert np.isfinite(t0).all() and t0[0] < t0[1]
    # A readout delay that pushes the later spike past the end of the run, but not the earlier one.
    delay_ticks = int(np.floor((T_MAX - t0.max()) / TICK)) + 1
    assert (t0.min() + delay_ticks * TICK) < T_MAX
    exe = compile_mock(net, t_max=T_MAX, mock=MockConfig(rate_limit=False, readout_delay=delay_ticks * 8e-9))
    rec, health = exe.run_with_health(x)
    t1 = np.asarray(rec.spikes["o"].to_first_spike_times(2))[0]
    assert int(health.late[0]) == 1
    kept = t1[np.isfinite(t1)]
    assert len(kept) == 1
    # The timestamp moves by exactly the delay (a whole number of cycles).
    assert abs(kept[0] - (t0.min() + delay_ticks * TICK)) < 1e-9


def test_spikes_beyond_max_spikes_are_counted_not_recorded() -> None:
    # max_spikes=1 is a 32 us refractory period on the chip; a run of 40 us (model 40 ms) outlives it.
    net = _fan_in(channels=2, weight=1.0)
    t = np.arange(0.0, 40e-3, 0.5e-3)
    x = {"x": snncomp.Spikes.from_lists([list(t)], [list(np.arange(len(t)) % 2)])}
    exe = compile_mock(net, t_max=40e-3)
    rec, health = exe.run_with_health(x)
    assert int(health.over_budget[0]) == 2  # each neuron fired again after its refractory period
    assert int(rec.spikes["o"].count()[0]) == 2
    assert "max_spikes=1 populations" in str(exe.report()) and "may fire again" in str(exe.report())


def test_neurons_not_routed_to_the_fpga_are_not_recorded() -> None:
    exe = compile_mock(_fan_in(), t_max=T_MAX)
    config = exe.lowered
    fpga = range(config.chip.hemispheres * config.chip.buses_per_hemisphere, config.chip.crossbar_outputs)
    silent = config.model_copy(update={"crossbar": tuple(n for n in config.crossbar if n.output not in fpga)})
    rec, health = exe.with_config(silent).run_with_health(_burst())
    assert int(health.unrecorded[0]) == 2 and int(rec.spikes["o"].count()[0]) == 0
    assert not bool(health.iteration_limit[0])
