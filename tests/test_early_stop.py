"""``early_stop``: a run ends once every neuron of the named populations has spiked.

What a first-spike loss reads must not change (forward and EventProp gradient, float64, against the
same network without the option), while the hidden population's later spikes are no longer simulated.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snncomp
from snncomp.errors import SnnCompError

T_MAX = 0.02


def _net(multi: bool = False, branch: bool = False) -> snncomp.Network:
    rng = np.random.default_rng(0)
    net = snncomp.Network("stop")
    x = net.input("x", 5)
    spikes = None if multi else 1
    h = net.lif("h", 30, tau_mem=1e-2, tau_syn=5e-3, max_spikes=spikes, t_refrac=1e-3 if multi else 0.0)
    o = net.lif("o", 3, tau_mem=1e-2, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=rng.normal(3.0, 1.6, (5, 30)))
    net.connect(h, o, weight=rng.normal(0.6, 0.5, (30, 3)))
    net.connect(h, h, weight=rng.normal(0.0, 0.3, (30, 30)), delay=1e-3 if multi else 0.0)
    if branch:  # downstream of the stop: runs up to it
        r = net.lif("r", 4, tau_mem=1e-2, tau_syn=5e-3, max_spikes=2)
        net.connect(h, r, weight=rng.normal(1.0, 0.3, (30, 4)))
    return net


def _inputs(batch: int = 8) -> dict[str, snncomp.Spikes]:
    pts = np.random.default_rng(1).uniform(0, 1, (batch, 2))
    t = np.stack([pts[:, 0], pts[:, 1], 1 - pts[:, 0], 1 - pts[:, 1], np.zeros(batch)], 1) * 1e-2
    return {"x": snncomp.Spikes.from_first_spike_times(t, dtype="float64")}


def _loss(exe: snncomp.runtime.Executable, p: object, inputs: dict) -> jax.Array:
    f = exe.apply(p, inputs).spikes["o"].to_first_spike_times(3)
    return jnp.sum(jnp.where(jnp.isfinite(f), jnp.sin(300.0 * jnp.where(jnp.isfinite(f), f, 0.0)), 0.0))


@pytest.mark.parametrize("multi", [False, True], ids=["single-spike", "multi-spike-delayed"])
def test_first_spikes_and_gradients_are_unchanged(multi: bool) -> None:
    with jax.enable_x64(True):
        net = _net(multi)
        full = snncomp.compile(net, t_max=T_MAX, dtype="float64", spikes_per_neuron=8)
        stop = snncomp.compile(net, t_max=T_MAX, dtype="float64", spikes_per_neuron=8, early_stop="o")
        inputs = _inputs()
        r_full, r_stop = full.run(inputs), stop.run(inputs)
        f_full = np.asarray(r_full.spikes["o"].to_first_spike_times(3))
        f_stop = np.asarray(r_stop.spikes["o"].to_first_spike_times(3))
        assert np.all(np.isfinite(f_full).sum(1) >= 1)
        np.testing.assert_allclose(f_stop, f_full, rtol=0, atol=1e-12)
        # The stop happened: fewer hidden spikes simulated, none after the last output's first spike.
        n_full = np.isfinite(np.asarray(r_full.spikes["h"].times)).sum()
        n_stop = np.isfinite(np.asarray(r_stop.spikes["h"].times)).sum()
        assert n_stop < n_full
        fired = np.isfinite(f_full).all(1)
        assert fired.any()
        last = np.where(fired, f_full.max(1), np.inf)
        h_stop = np.asarray(r_stop.spikes["h"].times)
        assert np.all(np.where(np.isfinite(h_stop), h_stop <= last[:, None], True))

        g_full = jax.grad(lambda p: _loss(full, p, inputs))(full.params)
        g_stop = jax.grad(lambda p: _loss(stop, p, inputs))(stop.params)
        for key in g_full["weight"]:
            assert float(jnp.max(jnp.abs(g_full["weight"][key]))) > 0
            np.testing.assert_allclose(g_stop["weight"][key], g_full["weight"][key], rtol=1e-9, atol=1e-14)


def test_schedule_merges_the_upstream_queue_and_says_so() -> None:
    exe = snncomp.compile(_net(branch=True), t_max=T_MAX, early_stop="o")
    text = str(exe.report())
    assert "event-queue(h, o; stop on first spikes of o)" in text
    # r is downstream of h but not upstream of o: a stage of its own after the stop.
    stages = exe.report().stages
    assert [pops for _i, _s, pops in stages][-1][0].startswith("r:")


def test_stages_after_the_stop_run_up_to_it() -> None:
    with jax.enable_x64(True):
        stop = snncomp.compile(_net(branch=True), t_max=T_MAX, dtype="float64", early_stop="o")
        full = snncomp.compile(_net(branch=True), t_max=T_MAX, dtype="float64")
        inputs = _inputs()
        rec, ref = stop.run(inputs), full.run(inputs)
        f = np.asarray(rec.spikes["o"].to_first_spike_times(3))
        last = np.where(np.isfinite(f).all(1), f.max(1), T_MAX)
        r = np.asarray(rec.spikes["r"].times)
        r_ref = np.asarray(ref.spikes["r"].times)
        assert np.all(np.where(np.isfinite(r), r <= last[:, None], True))
        # Before the stop, r is the same as without the option.
        before = np.where(r_ref <= last[:, None], r_ref, np.inf)
        np.testing.assert_allclose(np.sort(r, 1), np.sort(before, 1), rtol=0, atol=1e-12)
        assert np.isfinite(r_ref).sum() > np.isfinite(r).sum()


def test_early_stop_errors_name_the_population() -> None:
    with pytest.raises(SnnCompError, match=r"early_stop=q.*no population 'q'.*h, o"):
        snncomp.compile(_net(), t_max=T_MAX, early_stop="q")
    with pytest.raises(SnnCompError, match="early_stop must be a population name"):
        snncomp.compile(_net(), t_max=T_MAX, early_stop=3)


def test_early_stop_on_a_feed_forward_network_has_no_effect_and_says_so() -> None:
    net = snncomp.Network("ff")
    x = net.input("x", 5)
    h = net.lif("h", 10, tau_mem=1e-2, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, weight=np.full((5, 10), 2.0))
    exe = snncomp.compile(net, t_max=T_MAX, early_stop="h")
    assert "has no effect" in str(exe.report())
