"""The Python DSL: builds the IR, deterministic initializers, errors at the user's line."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import snncomp
from snncomp import DSLError, SnnCompError
from snncomp.errors import InitializerError


def _line() -> int:
    return inspect.currentframe().f_back.f_lineno  # type: ignore[union-attr]


def build_yinyang(seed: int) -> snncomp.ir.Network:
    net = snncomp.Network("yinyang")
    x = net.input("x", 5)
    h = net.lif("h", 120, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(0.0, 0.5, seed=seed))
    net.connect(h, o, init=snncomp.init.kaiming_normal(seed=seed + 1))
    return net.build()


def test_builder_produces_ir() -> None:
    net = build_yinyang(0)
    assert [n.name for n in net.nodes] == ["x", "h", "o"]
    assert net.edges[0].weight.shape == (5, 120)
    assert net.edges[1].weight.shape == (120, 3)
    assert net.node("h").max_spikes == 1
    assert net.output_names() == ("o",)


def test_same_seed_same_ir_different_seed_different_ir() -> None:
    a, b, c = build_yinyang(0), build_yinyang(0), build_yinyang(1)
    assert a == b
    assert snncomp.ir.dumps(a) == snncomp.ir.dumps(b)
    assert a != c


def test_initializer_statistics() -> None:
    w = snncomp.init.normal(1.0, 0.5, seed=3)((200, 300))
    assert abs(w.mean() - 1.0) < 0.01 and abs(w.std() - 0.5) < 0.01
    u = snncomp.init.uniform(-2.0, 3.0, seed=4)((100, 100), "float32")
    assert u.dtype == np.float32 and u.min() >= -2.0 and u.max() < 3.0
    k = snncomp.init.kaiming_normal(gain=2.0, seed=5)((400, 400))
    assert abs(k.std() - 2.0 / 20.0) < 0.005


def test_initializer_requires_explicit_randomness() -> None:
    with pytest.raises(InitializerError, match="exactly one of seed"):
        snncomp.init.normal()
    import jax

    w1 = snncomp.init.normal(key=jax.random.key(7))((3, 3))
    w2 = snncomp.init.normal(key=jax.random.key(7))((3, 3))
    assert np.array_equal(w1, w2)


def test_initializer_errors_are_snncomp_errors() -> None:
    # One except clause catches every snncomp error; the builtin stays for callers that catch it.
    for call, builtin, match in (
        (lambda: snncomp.init.uniform(), TypeError, "exactly one of seed"),
        (lambda: snncomp.init.kaiming_normal(seed=1.5), TypeError, "seed must be an int, got float"),
        (lambda: snncomp.init.uniform(2.0, 1.0, seed=0), ValueError, r"uniform: need high > low"),
    ):
        with pytest.raises(SnnCompError, match=match) as info:
            call()
        assert isinstance(info.value, builtin)
    with pytest.raises(DSLError, match="high > low"):
        snncomp.init.uniform(1.0, 1.0, seed=0)


def test_scalar_weight_and_mask_and_delay() -> None:
    net = snncomp.Network("n")
    x = net.input("x", 2)
    h = net.lif("h", 3, tau_mem=1e-2, tau_syn=5e-3)
    key = net.connect(x, h, weight=0.5, mask=np.array([[1, 0, 1], [0, 1, 0]]), delay=1e-3)
    ir = net.build()
    assert key == "x->h"
    assert ir.edges[0].weight.tolist() == [[0.5] * 3] * 2
    assert ir.edges[0].mask.dtype == bool and ir.edges[0].n_synapses == 3
    assert ir.edges[0].delay == 1e-3


def test_foreign_handle_fails_at_the_users_line() -> None:
    a, b = snncomp.Network("a"), snncomp.Network("b")
    xa = a.input("x", 2)
    hb = b.lif("h", 2, tau_mem=1e-2, tau_syn=5e-3)
    with pytest.raises(DSLError) as info:
        line = _line() + 1
        b.connect(xa, hb, weight=1.0)
    msg = str(info.value)
    assert f"test_dsl.py:{line}" in msg
    assert "belongs to network 'a', not 'b'" in msg


def test_wrong_shape_fails_at_connect() -> None:
    net = snncomp.Network("n")
    x = net.input("x", 2)
    h = net.lif("h", 3, tau_mem=1e-2, tau_syn=5e-3)
    with pytest.raises(DSLError) as info:
        line = _line() + 1
        net.connect(x, h, weight=np.zeros((3, 2)))
    assert f"test_dsl.py:{line}" in str(info.value)
    assert "shape [3, 2] but must be [source size, target size] = [2, 3]" in str(info.value)


def test_bad_parameter_fails_at_declaration() -> None:
    net = snncomp.Network("n")
    with pytest.raises(DSLError) as info:
        line = _line() + 1
        net.lif("h", 3, tau_mem=-1.0, tau_syn=5e-3)
    assert f"test_dsl.py:{line}" in str(info.value)
    assert "tau_mem: must be > 0" in str(info.value)
    with pytest.raises(DSLError, match="tau_adapt: unknown field"):
        net.lif("h", 3, tau_mem=1e-2, tau_syn=5e-3, tau_adapt=1.0)
    with pytest.raises(DSLError, match="size: Input should be a valid integer"):
        net.input("x", 2.5)


def test_misuse_messages() -> None:
    net = snncomp.Network("n")
    x = net.input("x", 2)
    h = net.lif("h", 2, tau_mem=1e-2, tau_syn=5e-3)
    with pytest.raises(DSLError, match="already exists"):
        net.input("x", 3)
    with pytest.raises(DSLError, match="target 'x' is an input"):
        net.connect(h, x, weight=1.0)
    with pytest.raises(DSLError, match="exactly one of weight"):
        net.connect(x, h)
    with pytest.raises(DSLError, match="no population named 'hh'"):
        net.connect(x, "hh", weight=1.0)
    with pytest.raises(DSLError, match="delay: Input should be greater than or equal to 0"):
        net.connect(x, h, weight=1.0, delay=-1.0)
    with pytest.raises(DSLError, match="'x' is an input and cannot be an output"):
        net.output(x)


def test_build_seals_the_builder() -> None:
    net = snncomp.Network("n")
    x = net.input("x", 2)
    h = net.lif("h", 2, tau_mem=1e-2, tau_syn=5e-3)
    net.connect(x, h, weight=1.0)
    first = net.build()
    assert net.build() is first
    with pytest.raises(DSLError) as info:
        line = _line() + 1
        net.lif("g", 2, tau_mem=1e-2, tau_syn=5e-3)
    msg = str(info.value)
    assert f"test_dsl.py:{line}" in msg and "already built" in msg


def test_committed_examples_are_reproducible() -> None:
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("build_examples", root / "examples" / "build_examples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    for fn in (mod.yinyang, mod.recurrent):
        net = fn()
        assert snncomp.ir.load(root / "examples" / f"{net.name}.json") == net
