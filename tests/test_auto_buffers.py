"""Spike buffers of populations without ``max_spikes`` size themselves and grow; overflow is never silent."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snncomp
from snncomp.errors import BufferGrowthWarning
from snncomp.train import fit

T_MAX = 50e-3


def _net(weight: float = 40.0) -> snncomp.Network:
    net = snncomp.Network("auto")
    x = net.input("x", 2)
    r = net.lif("r", 3, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)  # no max_spikes: about 30 spikes per neuron
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, r, weight=np.full((2, 3), weight))
    net.connect(r, o, weight=np.full((3, 2), 0.3))
    return net


def _inputs(batch: int = 2) -> dict[str, snncomp.Spikes]:
    return {"x": snncomp.Spikes.from_lists([[1e-3, 2e-3, 10e-3, 20e-3]] * batch, [[0, 1, 0, 1]] * batch)}


def test_compiles_without_a_bound_and_says_so() -> None:
    exe = snncomp.compile(_net(), t_max=T_MAX)
    assert exe.auto_buffers == {"r": 8}
    assert "sized automatically: 8 spikes per neuron" in str(exe.report())
    fixed = snncomp.compile(_net(), t_max=T_MAX, spikes_per_neuron=4)
    assert fixed.auto_buffers == {}  # an explicit bound is the user's: never grown


def test_an_eager_run_grows_once_and_equals_a_large_buffer() -> None:
    exe = snncomp.compile(_net(), t_max=T_MAX)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = exe.run(_inputs())
    grown = [w for w in caught if issubclass(w.category, BufferGrowthWarning)]
    assert len(grown) == 1 and "grown to 32" in str(grown[0].message), [str(w.message) for w in caught]
    assert exe.auto_buffers == {"r": 32}
    assert not np.any(np.asarray(rec.overflow["r"]))
    big = snncomp.compile(_net(), t_max=T_MAX, spikes_per_neuron=64).run(_inputs())
    n = int(np.asarray(big.spikes["r"].count())[0])
    assert n > 3 * 8  # the first buffer was really too small
    np.testing.assert_array_equal(np.asarray(rec.spikes["r"].times)[:, :n], np.asarray(big.spikes["r"].times)[:, :n])
    np.testing.assert_array_equal(np.asarray(rec.spikes["o"].times), np.asarray(big.spikes["o"].times))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the grown buffer is kept: no second growth
        exe.run(_inputs())


def test_under_jit_the_overflow_stays_a_flag() -> None:
    exe = snncomp.compile(_net(), t_max=T_MAX)
    flag = jax.jit(lambda p: exe.apply(p, _inputs()).overflow["r"])(exe.params)
    assert np.all(np.asarray(flag))
    assert exe.auto_buffers == {"r": 8}  # nothing grown behind a trace


def _loss(rec: snncomp.Recording, targets: jax.Array) -> jax.Array:
    t = rec.spikes["o"].to_first_spike_times(2)
    return jnp.mean((jnp.where(jnp.isfinite(t), t, T_MAX) - targets) ** 2)


def test_fit_grows_between_steps_and_repeats_the_step() -> None:
    data = (_inputs(8), np.full((8, 2), 5e-3, np.float32))
    exe = snncomp.compile(_net(), t_max=T_MAX)
    with pytest.warns(BufferGrowthWarning, match=r"fit: a batch in epoch 0 overflowed .* grown to 32, step repeated"):
        h = fit(exe, _loss, data, optimizer=optax.adam(1e-2), epochs=2, batch_size=4, progress=False)
    assert exe.auto_buffers == {"r": 32}
    ref = snncomp.compile(_net(), t_max=T_MAX, spikes_per_neuron=32)
    h_ref = fit(ref, _loss, data, optimizer=optax.adam(1e-2), epochs=2, batch_size=4, progress=False)
    for k in h.params["weight"]:
        np.testing.assert_array_equal(np.asarray(h.params["weight"][k]), np.asarray(h_ref.params["weight"][k]))


def test_bss2_mock_sizes_and_grows_readout_buffers() -> None:
    net = snncomp.Network("auto_mock")
    x = net.input("x", 2)
    r = net.lif("r", 3, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)
    net.connect(x, r, weight=np.full((2, 3), 1.0))
    exe = snncomp.compile(net, target="bss2-mock", t_max=T_MAX, saturate="clip")
    assert exe.auto_buffers == {"r": 8}
    t = np.arange(0.5e-3, 30e-3, 0.25e-3)  # a dense input train: about 20 spikes per neuron
    inputs = {"x": snncomp.Spikes.from_lists([list(t)], [[i % 2 for i in range(t.size)]])}
    with pytest.warns(BufferGrowthWarning, match="readout buffer of 8 spikes per neuron overflowed"):
        rec = exe.run(inputs, trial=0)
    assert exe.auto_buffers["r"] > 8 and not np.any(np.asarray(rec.overflow["r"]))
    big = snncomp.compile(net, target="bss2-mock", t_max=T_MAX, saturate="clip", spikes_per_neuron=512)
    ref = big.run(inputs, trial=0)
    n = int(np.asarray(ref.spikes["r"].count())[0])
    assert n > 3 * 8
    np.testing.assert_array_equal(np.asarray(rec.spikes["r"].times)[:, :n], np.asarray(ref.spikes["r"].times)[:, :n])


def test_bss2_mock_grow_buffers_and_its_limit() -> None:
    net = snncomp.Network("auto_mock_grow")
    x = net.input("x", 2)
    r = net.lif("r", 3, tau_mem=10e-3, tau_syn=5e-3, t_refrac=1e-3)
    net.connect(x, r, weight=np.full((2, 3), 1.0))
    exe = snncomp.compile(net, target="bss2-mock", t_max=T_MAX, saturate="clip")
    assert exe.grow_buffers() == {"r": 32}  # what fit calls between steps
    with pytest.raises(snncomp.BufferOverflowError, match="the most snncomp grows them to"):
        exe.grow_buffers(factor=1024)
    assert exe.auto_buffers == {"r": 32}  # a refused growth changes nothing
