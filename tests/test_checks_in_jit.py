"""No silent results: bad inputs and parameters raise under jit, grad, vmap and inside fit/evaluate.

Each check here returned a plausible result before (a traced input or parameter skipped the host
checks); the property test corrupts inputs and parameters at random and asserts that every
corruption raises, whatever transformation the run is under.
"""

from __future__ import annotations

import functools
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snncomp
from snncomp import Spikes, train
from snncomp.errors import InputError, InputWarning, PassError, PopulationError, TargetError

T_MAX = 20e-3
N_IN, N_OUT, BATCH, EVENTS = 3, 4, 4, 5


def _net(name: str = "small", delay: float = 1e-3) -> snncomp.Network:
    net = snncomp.Network(name)
    x = net.input("x", N_IN)
    o = net.lif("o", N_OUT, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.linspace(0.5, 2.0, N_IN * N_OUT).reshape(N_IN, N_OUT), delay=delay)
    return net


@functools.cache
def _exe() -> snncomp.Executable:
    return snncomp.compile(_net(), t_max=T_MAX)


def _good_inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 10e-3, (BATCH, EVENTS)), axis=-1).astype(np.float32)
    n = rng.integers(0, N_IN, (BATCH, EVENTS)).astype(np.int32)
    return t, n


def _loss(rec: snncomp.Recording, _targets: object = None) -> jax.Array:
    first = rec.spikes["o"].to_first_spike_times(N_OUT)
    return jnp.mean(jnp.where(jnp.isfinite(first), first, T_MAX))


# -- corruptions: (what, how) -> corrupted copy; the message each must raise with --------------------------------
def _set(array_name: str, value: float):
    def corrupt(t: np.ndarray, n: np.ndarray, b: int, e: int) -> None:
        (t if array_name == "t" else n)[b, e] = value

    return corrupt


INPUT_CORRUPTIONS = {
    "nan time": (_set("t", np.nan), "spike time is NaN"),
    "negative time": (_set("t", -1e-3), "negative"),
    "infinite time": (_set("t", np.inf), "not finite"),
    "index too large": (_set("n", N_IN), "out of range"),
    "index below -1": (_set("n", -3), "out of range"),
    "padding with a time": (_set("n", -1), "padding"),
}
PARAM_CORRUPTIONS = {
    "nan weight": ("weight", np.nan, "weights must be finite"),
    "infinite weight": ("weight", -np.inf, "weights must be finite"),
    "negative delay": ("delay", -1e-3, "delay must be finite and >= 0"),
    "nan delay": ("delay", np.nan, "delay must be finite and >= 0"),
}
MODES = ("jit", "grad", "jit-grad", "vmap", "fit", "evaluate")


def _corrupt_inputs(kind: str, b: int, e: int) -> tuple[np.ndarray, np.ndarray]:
    t, n = _good_inputs()
    fn, _ = INPUT_CORRUPTIONS[kind]
    fn(t, n, b, e)
    return t, n


def _corrupt_params(kind: str, pos: int) -> dict:
    group, value, _ = PARAM_CORRUPTIONS[kind]
    params = jax.tree.map(np.array, _exe().params)
    key = next(iter(params[group]))
    arr = params[group][key]
    flat = arr.reshape(-1)
    flat[pos % flat.size] = value
    params[group][key] = flat.reshape(arr.shape)
    return jax.tree.map(jnp.asarray, params)


def _run_in_mode(mode: str, t: np.ndarray, n: np.ndarray, params: dict) -> object:
    exe = _exe()

    def loss(p: dict, t: jax.Array, n: jax.Array) -> jax.Array:
        return _loss(exe.apply(p, {"x": Spikes(times=t, neurons=n)}))

    if mode == "jit":
        return jax.block_until_ready(jax.jit(loss)(params, t, n))
    if mode == "grad":
        return jax.block_until_ready(jax.grad(loss)(params, jnp.asarray(t), jnp.asarray(n)))
    if mode == "jit-grad":
        return jax.block_until_ready(jax.jit(jax.grad(loss))(params, t, n))
    if mode == "vmap":
        return jax.block_until_ready(jax.vmap(loss, in_axes=(None, 0, 0))(params, t, n))
    data = ({"x": Spikes(times=jnp.asarray(t), neurons=jnp.asarray(n))}, np.zeros(BATCH))
    if mode == "fit":
        return train.fit(exe, _loss, data, params=params, batch_size=BATCH, progress=False)
    return train.evaluate(exe, _loss, data, params=params, batch_size=BATCH)


def _expect_check(mode: str, message: str):
    # fit/evaluate own the jit boundary and give an InputError; a user's own jit gets equinox's runtime
    # error whose text carries the same message.
    if mode in ("fit", "evaluate"):
        return pytest.raises(InputError, match=re.escape(message))
    return pytest.raises(Exception, match=re.escape(message))


@settings(max_examples=12)
@given(
    kind=st.sampled_from(sorted(INPUT_CORRUPTIONS)),
    mode=st.sampled_from(MODES),
    b=st.integers(0, BATCH - 1),
    e=st.integers(0, EVENTS - 1),
)
def test_corrupted_inputs_always_raise(kind: str, mode: str, b: int, e: int) -> None:
    t, n = _corrupt_inputs(kind, b, e)
    with _expect_check(mode, INPUT_CORRUPTIONS[kind][1]):
        _run_in_mode(mode, t, n, _exe().params)


@settings(max_examples=12)
@given(kind=st.sampled_from(sorted(PARAM_CORRUPTIONS)), mode=st.sampled_from(MODES), pos=st.integers(0, 100))
def test_corrupted_params_always_raise(kind: str, mode: str, pos: int) -> None:
    t, n = _good_inputs()
    with _expect_check(mode, PARAM_CORRUPTIONS[kind][2]):
        _run_in_mode(mode, t, n, _corrupt_params(kind, pos))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_clean_inputs(mode: str) -> None:
    # The checks must not fire on good values (a check that always fires would pass the tests above).
    t, n = _good_inputs()
    _run_in_mode(mode, t, n, _exe().params)


def test_eager_messages_name_sample_and_event() -> None:
    t, n = _corrupt_inputs("nan time", 2, 3)
    with pytest.raises(InputError, match=r"inputs\['x'\]: spike time is NaN at sample \[2\], event 3"):
        _exe().run({"x": Spikes(times=jnp.asarray(t), neurons=jnp.asarray(n))})
    with pytest.raises(InputError, match=r"params\['weight'\]\['x->o'\]: weight \[1, 2\] is nan"):
        _exe().run({"x": Spikes.from_lists([1e-3], [0])}, _corrupt_params("nan weight", 1 * N_OUT + 2))


def test_users_optax_loop_stops_at_a_negative_delay() -> None:
    # A plain optax loop over weights and delays, jitted by the user: a step that drives a delay
    # negative must raise at the next step, not run on with a causality-breaking delay.
    import optax

    exe = _exe()
    t, n = _good_inputs()
    inputs = {"x": Spikes(times=jnp.asarray(t), neurons=jnp.asarray(n))}
    opt = optax.sgd(1.0)
    params = exe.params
    state = opt.init(params)

    @jax.jit
    def step(p: dict, s: object) -> tuple[dict, object]:
        grads = jax.grad(lambda p: _loss(exe.apply(p, inputs)))(p)
        grads = grads.replace(delay={k: jnp.ones_like(v) for k, v in grads["delay"].items()})
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    params, state = step(params, state)  # the delay goes from 1 ms to 1 ms - 1 s
    assert float(next(iter(params["delay"].values()))) < 0
    with pytest.raises(Exception, match="delay must be finite and >= 0"):
        jax.block_until_ready(step(params, state))


def test_fit_keeps_delays_non_negative() -> None:
    import optax

    exe = _exe()
    t, n = _good_inputs()
    data = ({"x": Spikes(times=jnp.asarray(t), neurons=jnp.asarray(n))}, np.zeros(BATCH))

    # Spikes come later as the delay grows, so the loss's gradient pushes the delay down.
    hist = train.fit(
        exe, _loss, data, optimizer=optax.sgd(10.0), trainable=("delay",), epochs=3, batch_size=BATCH, progress=False
    )
    delays = np.asarray(list(hist.params["delay"].values()))
    assert np.all(delays >= 0)
    assert np.any(delays == 0)  # the projection was active: plain SGD would have made it negative


# -- item 1: an empty program, removed populations -------------------------------------------------------------
def _cycle(outputs: bool) -> snncomp.Network:
    net = snncomp.Network("cycle")
    x = net.input("x", 2)
    a = net.lif("a", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    b = net.lif("b", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, a, weight=1.0)
    net.connect(a, b, weight=1.0)
    net.connect(b, a, weight=1.0)
    if outputs:
        net.output(b)
    return net


@pytest.mark.parametrize("target", ["jax", "bss2-mock"])
def test_recurrent_cycle_without_outputs_is_an_error(target: str) -> None:
    with pytest.raises(PassError, match=r"no output population.*cycle \{a, b\}.*net\.output\('b'\)"):
        snncomp.compile(_cycle(outputs=False), target=target, t_max=T_MAX, spikes_per_neuron=2)
    exe = snncomp.compile(_cycle(outputs=True), target=target, t_max=T_MAX, spikes_per_neuron=2)
    assert set(exe.run({"x": Spikes.from_lists([1e-3], [0])}).spikes) == {"a", "b"}


def _dead() -> snncomp.Network:
    net = snncomp.Network("dead")
    x = net.input("x", 2)
    a = net.lif("a", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    b = net.lif("b", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, a, weight=2.0)
    net.connect(x, b, weight=2.0)
    net.output(a)
    return net


@pytest.mark.parametrize("target", ["jax", "bss2-mock"])
def test_removed_population_is_named_as_removed(target: str) -> None:
    exe = snncomp.compile(_dead(), target=target, t_max=T_MAX)
    rec = exe.run({"x": Spikes.from_lists([1e-3], [0])})
    why = "removed by canonicalize: it reaches no output"
    for table in (rec.spikes, rec.overflow):
        with pytest.raises(PopulationError, match=f"population 'b' is not in the compiled network: it was {why}"):
            table["b"]
    with pytest.raises(PopulationError, match=r"no population 'aa' \(did you mean 'a'\?\)"):
        rec.spikes["aa"]
    assert "removed populations:\n  - b: " + why in str(exe.report())
    # The mapping survives jit (the reasons travel as static data).
    out = jax.jit(lambda t: exe.run({"x": Spikes(times=t, neurons=jnp.array([0], jnp.int32))}))(jnp.array([1e-3]))
    with pytest.raises(PopulationError, match=why):
        out.spikes["b"]
    if target == "jax":
        with pytest.raises(InputError, match=f"trace_populations: population 'b' .*{why}"):
            exe.run({"x": Spikes.from_lists([1e-3], [0])}, trace_times=[0.0], trace_populations=["b"])


# -- item 9: every input spike beyond the window ----------------------------------------------------------------
@pytest.mark.parametrize("target", ["jax", "bss2-mock"])
def test_inputs_all_beyond_t_max_warn(target: str) -> None:
    exe = snncomp.compile(_net(delay=0.0), target=target, t_max=T_MAX)  # the chip has no delays
    with pytest.warns(InputWarning, match=r"every input spike .* lies at or after t_max = 0.02 s.*milliseconds"):
        exe.run({"x": Spikes.from_lists([1.0, 2.0], [0, 1])})  # milliseconds by mistake
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        exe.run({"x": Spikes.from_lists([1e-3, 2.0], [0, 1])})  # one spike inside: no warning
        exe.run({"x": Spikes.from_lists([], [])})  # no spikes at all: nothing to warn about


def test_target_names_are_matched_exactly() -> None:
    with pytest.raises(TargetError, match=r"unknown target 'bss2x'.*did you mean 'bss2'"):
        snncomp.compile(_net(), target="bss2x")
