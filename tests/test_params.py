"""``Params``: an executable's parameters as a typed PyTree that still reads like the dict it replaced."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import snncomp
from snncomp.errors import InputError
from snncomp.runtime import Params, with_groups
from snncomp.train import clip_weights, fit, load_checkpoint, make_step, save_checkpoint

T_MAX = 20e-3


def _net() -> snncomp.ir.Network:
    net = snncomp.Network("params")
    x = net.input("x", 3)
    h = net.lif("h", 4, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(3.0, 0.5, seed=0))
    net.connect(h, o, init=snncomp.init.normal(2.0, 0.5, seed=1))
    return net.build()


@pytest.fixture(scope="module")
def exe() -> snncomp.Executable:
    return snncomp.compile(_net(), t_max=T_MAX)


def _inputs() -> dict[str, snncomp.Spikes]:
    return {"x": snncomp.Spikes.from_lists([[1e-3, 2e-3, 3e-3], [0.5e-3, 1e-3]], [[0, 1, 2], [2, 0]])}


def _first_times(rec: snncomp.Recording) -> jax.Array:
    t = rec.spikes["o"].to_first_spike_times(2)
    return jnp.where(jnp.isfinite(t), t, T_MAX)


def _loss(exe: snncomp.Executable) -> Callable[[object], jax.Array]:
    def loss(params: object) -> jax.Array:
        return jnp.sum(_first_times(exe.apply(params, _inputs())))

    return loss


def _assert_same(a: object, b: object) -> None:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# -- the mapping -------------------------------------------------------------------------------------
def test_reads_like_the_dict_it_replaced(exe: snncomp.Executable) -> None:
    p = exe.params
    assert isinstance(p, Params) and isinstance(p, snncomp.Params)
    assert list(p) == list(p.keys()) == ["weight", "delay", "bias"]
    assert "bias" in p and "mask" not in p and len(p) == 3
    assert set(p["weight"]) == set(p["delay"]) == {"x->h", "h->o"}
    assert p["weight"]["x->h"].shape == (3, 4) and p.weight["h->o"] is p["weight"]["h->o"]
    assert p.delay is p["delay"] and p.bias is p["bias"] and p["bias"]["h"].shape == (4,)
    assert dict(p.items())["weight"] is p.weight
    assert p.get("nothing") is None
    with pytest.raises(KeyError, match="no group 'mask'"):
        p["mask"]
    with pytest.raises(AttributeError, match="immutable"):
        p.weight = {}


def test_replace_and_union_build_changed_copies(exe: snncomp.Executable) -> None:
    p = exe.params
    w = {k: v * 2 for k, v in p.weight.items()}
    q = p.replace(weight=w)
    assert isinstance(q, Params) and q.weight is not p.weight and q.delay is p.delay
    np.testing.assert_array_equal(np.asarray(q.weight["x->h"]), 2 * np.asarray(p.weight["x->h"]))
    assert (p | {"weight": w}).weight["x->h"] is w["x->h"]
    assert "bias" not in p.replace(bias=None) and p.replace(bias=None).bias == {}
    with pytest.raises(InputError, match="unknown group"):
        p.replace(mask={})
    with pytest.raises(InputError, match="cannot be dropped"):
        p.replace(delay=None)
    with pytest.raises(InputError, match="'delay' group must be a dict"):
        Params(weight={}, delay=3.0)
    # with_groups keeps the kind: a dict stays a dict (a jitted step's params keep their PyTree type).
    assert type(with_groups(dict(p), weight=w)) is dict and type(with_groups(p, weight=w)) is Params


# -- the PyTree ------------------------------------------------------------------------------------------
def test_grad_returns_params_with_the_same_keys(exe: snncomp.Executable) -> None:
    grads = jax.grad(_loss(exe))(exe.params)
    assert isinstance(grads, Params)
    assert jax.tree.structure(grads) == jax.tree.structure(exe.params)
    for group in exe.params:
        assert set(grads[group]) == set(exe.params[group])
    assert float(jnp.abs(grads["weight"]["h->o"]).sum()) > 0  # the output spikes depend on these weights


def test_tree_map_over_two_params(exe: snncomp.Executable) -> None:
    p = exe.params
    doubled = jax.tree.map(lambda a, b: a + b, p, p)
    assert isinstance(doubled, Params)
    np.testing.assert_allclose(np.asarray(doubled.weight["x->h"]), 2 * np.asarray(p.weight["x->h"]))
    np.testing.assert_allclose(np.asarray(doubled.bias["o"]), 2 * np.asarray(p.bias["o"]))
    # Key paths are a dict's, so both kinds flatten to the same paths (and checkpoints interchange).
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(p)[0]]
    dict_paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(dict(p))[0]]
    assert paths == dict_paths and "['weight']['x->h']" in paths


def test_optax_update_round_trip(exe: snncomp.Executable) -> None:
    p = exe.params
    opt = optax.adam(1e-2)
    state = opt.init(p)
    grads = jax.grad(_loss(exe))(p)
    updates, state = opt.update(grads, state, p)
    new = optax.apply_updates(p, updates)
    assert isinstance(updates, Params) and isinstance(new, Params)
    assert jax.tree.structure(new) == jax.tree.structure(p)
    moved = np.asarray(new.weight["h->o"]) - np.asarray(p.weight["h->o"])
    assert np.abs(moved).max() > 0
    new = new.replace(delay=p.delay)  # Adam stepped the delays (at 0) below 0, which a run refuses
    _assert_same(exe.run(_inputs(), new).spikes["o"].times, exe.run(_inputs(), dict(new)).spikes["o"].times)


def test_jit_takes_params_and_dicts(exe: snncomp.Executable) -> None:
    loss = jax.jit(_loss(exe))
    assert float(loss(exe.params)) == pytest.approx(float(loss(dict(exe.params))))


def test_pickle_round_trip(exe: snncomp.Executable) -> None:
    back = pickle.loads(pickle.dumps(exe.params))
    assert isinstance(back, Params) and list(back) == list(exe.params)
    _assert_same(back, exe.params)


def test_checkpoints_interchange_dicts_and_params(exe: snncomp.Executable, tmp_path: Path) -> None:
    p = exe.params
    changed = jax.tree.map(lambda a: a + 0.25, p)
    save_checkpoint(tmp_path / "params.npz", changed)
    save_checkpoint(tmp_path / "dict.npz", {g: dict(v) for g, v in changed.items()})
    for name in ("params.npz", "dict.npz"):
        into_params, _, _ = load_checkpoint(tmp_path / name, p)
        into_dict, _, _ = load_checkpoint(tmp_path / name, dict(p))
        assert isinstance(into_params, Params) and type(into_dict) is dict
        _assert_same(into_params, changed)
        _assert_same(into_dict, dict(changed))


# -- runs and training ---------------------------------------------------------------------------------
def test_dict_and_params_give_identical_runs(exe: snncomp.Executable) -> None:
    p = jax.tree.map(lambda a: a * 1.1, exe.params)
    as_dict = {g: dict(v) for g, v in p.items()}
    a, b = exe.run(_inputs(), p), exe.run(_inputs(), as_dict)
    _assert_same(a.spikes["o"].times, b.spikes["o"].times)
    _assert_same(a.spikes["h"].times, b.spikes["h"].times)
    assert np.isfinite(np.asarray(a.spikes["o"].times)).any()  # something to compare
    # Without 'bias' a dict runs with the compiled biases, as before biases were parameters.
    no_bias = {"weight": as_dict["weight"], "delay": as_dict["delay"]}
    _assert_same(exe.run(_inputs(), no_bias).spikes["o"].times, a.spikes["o"].times)


def test_check_params_names_the_group_and_key(exe: snncomp.Executable) -> None:
    p = exe.params
    bad_shape = p.replace(weight={**p.weight, "h->o": jnp.zeros((2, 4))})
    with pytest.raises(InputError, match=r"params\['weight'\]\['h->o'\]: expected shape \[4, 2\]"):
        exe.run(_inputs(), bad_shape)
    with pytest.raises(InputError, match=r"params\['delay'\]\['x->h'\]: a delay must be finite and >= 0"):
        exe.run(_inputs(), p.replace(delay={**p.delay, "x->h": -1e-3}))
    nan_bias = {**p, "bias": {**p.bias, "o": jnp.asarray([0.0, jnp.nan])}}
    with pytest.raises(InputError, match=r"params\['bias'\]\['o'\]: bias \[1\] is nan"):
        exe.run(_inputs(), nan_bias)
    with pytest.raises(InputError, match=r"params\['weight'\] must have the keys \['h->o', 'x->h'\]"):
        exe.run(_inputs(), p.replace(weight={"x->h": p.weight["x->h"]}))
    with pytest.raises(InputError, match="params must be a dict with keys 'weight' and 'delay'"):
        exe.run(_inputs(), {"weight": p.weight})


def test_make_step_takes_params_and_dicts(exe: snncomp.Executable) -> None:
    def loss(rec: snncomp.Recording, _targets: object) -> jax.Array:
        return jnp.mean(_first_times(rec))

    step = make_step(exe, loss, optax.adam(1e-2), trainable=("weight", "bias"), project=clip_weights(3.5))
    targets = jnp.zeros(2)
    assert float(jnp.max(jnp.abs(exe.params.weight["x->h"]))) > 3.5  # so that the projection has work
    for params in (exe.params, dict(exe.params)):
        new, state, value, _ = step(params, step.init(params), _inputs(), targets)
        assert isinstance(new, Params) and np.isfinite(float(value))
        assert float(jnp.max(jnp.abs(new["weight"]["x->h"]))) <= 3.5  # the projection ran
        assert not np.array_equal(np.asarray(new["bias"]["o"]), np.asarray(params["bias"]["o"]))
        np.testing.assert_array_equal(np.asarray(new["delay"]["x->h"]), np.asarray(params["delay"]["x->h"]))
        # A dict rebuilt from the step's Params (a user's loop) continues with the same optimizer state.
        again, _, _, _ = step({**new, "weight": dict(new["weight"])}, state, _inputs(), targets)
        assert isinstance(again, Params)


def test_fit_returns_params(exe: snncomp.Executable) -> None:
    n = 8
    inputs = {"x": snncomp.Spikes.from_lists([[1e-3, 2e-3, 3e-3]] * n, [[0, 1, 2]] * n)}
    history = fit(
        exe,
        lambda rec, y: jnp.mean((_first_times(rec)[:, 0] - y) ** 2),
        (inputs, jnp.full(n, 8e-3)),
        optimizer=optax.adam(1e-2),
        epochs=1,
        batch_size=4,
        progress=False,
    )
    assert isinstance(history.params, Params) and list(history.params) == list(exe.params)
    assert not np.array_equal(np.asarray(history.params.weight["h->o"]), np.asarray(exe.params.weight["h->o"]))


def test_bss2_mock_params_are_params() -> None:
    from snncomp.targets.bss2.mock import compile_mock

    mock = compile_mock(_net(), t_max=T_MAX)
    assert isinstance(mock.params, Params)
    assert jax.tree.structure(mock.params) == jax.tree.structure(snncomp.compile(_net(), t_max=T_MAX).params)
    a = mock.run(_inputs(), mock.params, trial=0)
    b = mock.run(_inputs(), {g: dict(v) for g, v in mock.params.items()}, trial=0)
    _assert_same(a.spikes["o"].times, b.spikes["o"].times)
