"""The training loop: determinism, resume, safe checkpoints, callbacks, sharding.

These tests use a small differentiable stand-in for an executable (the loop only needs
``params`` and a pure ``apply``); learning with the real simulator is tested with EventProp.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snncomp import SnnCompError
from snncomp.train import evaluate, fit, load_checkpoint, save_checkpoint


@dataclass
class Linear:
    params: Any

    def apply(self, params: Any, inputs: Any) -> Any:
        return {"logits": inputs["x"] @ params["w"] + params["b"]}


def ce(rec: Any, y: Any) -> jax.Array:
    logp = jax.nn.log_softmax(rec["logits"])
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def acc(rec: Any, y: Any) -> jax.Array:
    return jnp.mean(jnp.argmax(rec["logits"], axis=1) == y)


def data(n: int = 256, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int32)
    return {"x": x}, y


def model() -> Linear:
    return Linear({"w": jnp.zeros((2, 2)), "b": jnp.zeros(2)})


def test_learns_and_is_deterministic() -> None:
    h1 = fit(
        model(),
        ce,
        data(),
        optimizer=optax.adam(0.1),
        epochs=5,
        batch_size=32,
        seed=3,
        accuracy=acc,
        eval_data=data(128, 1),
        progress=False,
    )
    h2 = fit(
        model(),
        ce,
        data(),
        optimizer=optax.adam(0.1),
        epochs=5,
        batch_size=32,
        seed=3,
        accuracy=acc,
        eval_data=data(128, 1),
        progress=False,
    )
    assert h1["train_loss"] == h2["train_loss"]
    assert h1["train_loss"][-1] < h1["train_loss"][0]
    assert h1["eval_accuracy"][-1] > 0.9
    h3 = fit(model(), ce, data(), optimizer=optax.adam(0.1), epochs=5, batch_size=32, seed=4, progress=False)
    assert h3["train_loss"] != h1["train_loss"]


def test_resume_continues_exactly(tmp_path: Path) -> None:
    full = fit(model(), ce, data(), optimizer=optax.adam(0.05), epochs=3, batch_size=32, seed=1, progress=False)
    fit(
        model(),
        ce,
        data(),
        optimizer=optax.adam(0.05),
        epochs=2,
        batch_size=32,
        seed=1,
        progress=False,
        checkpoint_dir=tmp_path,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-0000.npz", "ckpt-0001.npz"]
    resumed = fit(
        model(),
        ce,
        data(),
        optimizer=optax.adam(0.05),
        epochs=3,
        batch_size=32,
        seed=1,
        progress=False,
        checkpoint_dir=tmp_path,
        resume=True,
    )
    assert len(resumed.records) == 3
    np.testing.assert_array_equal(np.asarray(resumed.params["w"]), np.asarray(full.params["w"]))
    assert resumed["train_loss"] == full["train_loss"]


def test_checkpoint_is_plain_npz(tmp_path: Path) -> None:
    params = {"w": jnp.arange(6.0).reshape(2, 3), "nested": {"d": jnp.array(0.5)}}
    path = save_checkpoint(tmp_path / "c.npz", params, meta={"epoch": 7})
    with np.load(path, allow_pickle=False) as f:  # loads without pickle
        assert set(f.files) == {"params/['w']", "params/['nested']['d']", "meta"}
    back, _, meta = load_checkpoint(path, params)
    np.testing.assert_array_equal(np.asarray(back["w"]), np.asarray(params["w"]))
    assert meta == {"epoch": 7}
    with pytest.raises(SnnCompError, match="has shape"):
        load_checkpoint(path, {"w": jnp.zeros((3, 3)), "nested": {"d": jnp.array(0.0)}})


def test_callbacks_stop_and_bad_arguments() -> None:
    h = fit(model(), ce, data(), epochs=10, batch_size=32, progress=False, callbacks=[lambda r, p: r["epoch"] >= 1])
    assert len(h.records) == 2
    with pytest.raises(SnnCompError, match="larger than the training set"):
        fit(model(), ce, data(16), batch_size=32, progress=False)
    bad = ({"x": np.zeros((10, 2), np.float32)}, np.zeros(9, np.int32))
    with pytest.raises(SnnCompError, match="same batch size"):
        fit(model(), ce, bad, batch_size=2, progress=False)


def test_evaluate_uses_every_sample() -> None:
    m = model()
    inputs, y = data(100)
    ev = evaluate(m, ce, (inputs, y), batch_size=32, accuracy=acc)
    np.testing.assert_allclose(ev["loss"], np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(ev["accuracy"], np.mean(y == 0), rtol=1e-6)  # argmax of equal logits is 0


def test_progress_bar_runs() -> None:
    h = fit(model(), ce, data(64), epochs=1, batch_size=32, progress=True, accuracy=acc)
    assert len(h.records) == 1


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np, optax
    sys.path.insert(0, sys.argv[1])
    from test_train import model, ce, acc, data
    from snncomp.train import fit
    h = fit(model(), ce, data(), optimizer=optax.adam(0.1), epochs=2, batch_size=32, seed=0, accuracy=acc,
            progress=False)
    print(json.dumps({"devices": jax.device_count(), "loss": h["train_loss"],
                      "w": np.asarray(h.params["w"]).tolist()}))
    """
)


def test_sharded_training_matches_single_device() -> None:
    here = str(Path(__file__).parent)
    results = []
    for flags in ("", "--xla_force_host_platform_device_count=4"):
        env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
        r = subprocess.run([sys.executable, "-c", SHARDED, here], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        import json

        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert [r["devices"] for r in results] == [1, 4]
    np.testing.assert_allclose(results[0]["loss"], results[1]["loss"], rtol=1e-5)
    np.testing.assert_allclose(results[0]["w"], results[1]["w"], rtol=1e-5, atol=1e-6)


def test_clip_weights_projects_after_every_step() -> None:
    from snncomp.train import clip_weights

    project = clip_weights(0.5)
    params = {"weight": {"a": jnp.asarray([[-2.0, 0.3, 0.9]])}, "delay": {"a": jnp.asarray(0.001)}}
    out = project(params)
    np.testing.assert_array_equal(np.asarray(out["weight"]["a"]), np.asarray([[-0.5, 0.3, 0.5]], np.float32))
    assert out["delay"]["a"] is params["delay"]["a"]  # delays untouched
    with pytest.raises(SnnCompError, match="bound"):
        clip_weights(-1.0)


@dataclass
class NoisyLinear(Linear):
    """``Linear`` with dropout-like input noise: ``fit`` hands it a key per step."""

    def apply(self, params: Any, inputs: Any, key: Any = None) -> Any:
        x = inputs["x"]
        if key is not None:
            x = x * jax.random.bernoulli(key, 0.5, x.shape)
        return {"logits": x @ params["w"] + params["b"]}


def test_stochastic_apply_gets_a_fresh_key_per_step_and_stays_reproducible() -> None:
    def run(seed: int) -> np.ndarray:
        h = fit(
            NoisyLinear(model().params),
            ce,
            data(),
            optimizer=optax.sgd(0.5),
            epochs=2,
            batch_size=64,
            seed=seed,
            progress=False,
        )
        return np.asarray(h.params["w"])

    plain = np.asarray(
        fit(model(), ce, data(), optimizer=optax.sgd(0.5), epochs=2, batch_size=64, seed=0, progress=False).params["w"]
    )
    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # a different seed draws different noise (and batch order)
    assert not np.allclose(a, plain)  # the noise really acted


def test_make_step_loop_equals_fit() -> None:
    # A hand-written loop over make_step, in fit's batch order, must land on fit's parameters.
    from snncomp.train import make_step

    train = data()
    opt = optax.adam(0.1)
    h = fit(model(), ce, train, optimizer=opt, epochs=2, batch_size=64, seed=3, progress=False)
    step = make_step(model(), ce, opt, accuracy=acc)
    params = model().params
    state = step.init(params)
    for epoch in range(2):
        order = np.random.default_rng([3, epoch]).permutation(len(train[1]))
        for b in range(len(train[1]) // 64):
            idx = order[b * 64 : (b + 1) * 64]
            params, state, value, accuracy = step(params, state, {"x": train[0]["x"][idx]}, train[1][idx])
    np.testing.assert_allclose(np.asarray(params["w"]), np.asarray(h.params["w"]), rtol=1e-6)
    assert np.isfinite(float(value)) and 0.5 < float(accuracy) <= 1.0
    assert not step.stochastic


def test_make_step_reports_bad_inputs_as_input_error() -> None:
    # The checks compiled into a real executable surface as InputError from the step, not as XLA text.
    import snncomp
    from snncomp import Spikes
    from snncomp.errors import InputError
    from snncomp.train import make_step

    net = snncomp.Network("step")
    x = net.input("x", 2)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.full((2, 2), 2.0))
    exe = snncomp.compile(net, t_max=20e-3)

    def first_spike_loss(rec: Any, _targets: Any) -> jax.Array:
        first = rec.spikes["o"].to_first_spike_times(2)
        return jnp.mean(jnp.where(jnp.isfinite(first), first, 20e-3))

    step = make_step(exe, first_spike_loss, optax.adam(1e-3))
    params = exe.params
    state = step.init(params)
    good = Spikes(times=jnp.asarray([[1e-3, 2e-3]]), neurons=jnp.asarray([[0, 1]]))
    params, state, value, _ = step(params, state, {"x": good}, jnp.zeros(1))
    assert np.isfinite(float(value))
    bad = Spikes(times=jnp.asarray([[1e-3, np.nan]]), neurons=jnp.asarray([[0, 1]]))
    with pytest.raises(InputError, match=r"step: .*spike time is NaN"):
        step(params, state, {"x": bad}, jnp.zeros(1))
    nan_weights = {**params, "weight": jax.tree.map(lambda w: w.at[0, 0].set(jnp.nan), params["weight"])}
    with pytest.raises(InputError, match=r"step: params\['weight'\]\['x->o'\]: a weight is NaN"):
        step(nan_weights, state, {"x": good}, jnp.zeros(1))
    # The checks leave the program as a returned code, not as host callbacks: only such a program
    # can be stored in JAX's persistent compilation cache (a new process's first step skips XLA).
    hlo = step.jitted.lower(params, state, {"x": good}, jnp.zeros(1), jax.random.PRNGKey(0)).as_text()
    assert "callback" not in hlo


def test_collected_checks_keep_callbacks_under_a_nested_transform() -> None:
    # A check made under a vmap inside collect_checks cannot leave as a flag of the outer trace (its
    # value is per sample): it keeps equinox's raising check instead of leaking a tracer.
    import equinox as eqx

    from snncomp.runtime import checked_in_jit, collect_checks

    def f(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        with collect_checks() as sink:
            y = jax.vmap(lambda v: checked_in_jit(v, lambda v: jnp.stack([v < 0]), ["negative"]))(x)
            z = checked_in_jit(x, lambda v: jnp.stack([jnp.any(jnp.isnan(v))]), ["nan"])
        return y + z, sink.code()

    _, code = jax.jit(f)(jnp.ones(3))
    assert int(code) == 0
    _, code = jax.jit(f)(jnp.asarray([1.0, jnp.nan]))
    assert int(code) == 1
    with pytest.raises((eqx.EquinoxRuntimeError, ValueError, RuntimeError), match="negative"):
        jax.block_until_ready(jax.jit(f)(jnp.asarray([1.0, -1.0])))
