"""``run`` and ``apply`` show their keywords (``help()``, IDEs) and ``apply`` forwards them."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import snncomp
from snncomp.runtime import Executable, JaxExecutable

_KEYWORDS = {"t_max", "trace_times", "trace_populations"}


def _classes() -> list[type]:
    out: list[type] = [Executable, JaxExecutable]
    try:
        from snncomp.targets.bss2.mock import MockExecutable

        out.append(MockExecutable)
    except ImportError:  # pragma: no cover - the emulator is part of the package
        pass
    return out


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_run_and_apply_name_their_keywords(cls: type) -> None:
    for method, extra in (("run", {"on_overflow"}), ("apply", {"key"})):
        sig = inspect.signature(getattr(cls, method))
        kinds = {p.kind for p in sig.parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, f"{cls.__name__}.{method} hides keywords in **kwargs"
        assert _KEYWORDS | extra <= set(sig.parameters), f"{cls.__name__}.{method}{sig}"


def test_apply_forwards_t_max() -> None:
    net = snncomp.Network("fwd")
    x = net.input("x", 1)
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.full((1, 1), 20.0))
    exe = snncomp.compile(net, t_max=20e-3)
    inputs = {"x": snncomp.Spikes.from_lists([[1e-3]], [[0]])}
    spike = float(exe.apply(exe.params, inputs).spikes["o"].times[0, 0])
    assert 1e-3 < spike < 20e-3
    cut = exe.apply(exe.params, inputs, t_max=0.5 * (1e-3 + spike))  # the window ends before the spike
    assert not np.isfinite(np.asarray(cut.spikes["o"].times)).any()


def test_every_target_applies_with_a_key() -> None:
    # One training call works on every target: a deterministic one ignores the key.
    from snncomp.train import _takes_key

    net = snncomp.Network("keyed")
    x = net.input("x", 1)
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.full((1, 1), 20.0))
    exe = snncomp.compile(net, t_max=20e-3)
    inputs = {"x": snncomp.Spikes.from_lists([[1e-3]], [[0]])}
    import jax

    a = exe.apply(exe.params, inputs, key=jax.random.PRNGKey(0)).spikes["o"].times
    b = exe.apply(exe.params, inputs, key=jax.random.PRNGKey(1)).spikes["o"].times
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not _takes_key(exe) and exe.uses_key is False
