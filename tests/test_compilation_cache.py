"""The persistent compilation cache: on by default, moved or turned off by environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A small network compiled and run in a fresh process; JAX stores every program (min compile time 0).
_SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np, snncomp
    from snncomp._jax_cache import configure_compilation_cache
    net = snncomp.Network("cache_probe")
    x = net.input("x", 2)
    o = net.lif("o", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=np.full((2, 3), 2.0))
    exe = snncomp.compile(net, t_max=20e-3)
    exe.run({"x": snncomp.Spikes.from_lists([[1e-3, 2e-3]], [[0, 1]])})
    print("dir", configure_compilation_cache(), jax.config.jax_compilation_cache_dir)
    """
)


def _run(env: dict[str, str], home: Path) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNNCOMP_", "JAX_COMPILATION_CACHE"))}
    env = {**base, "HOME": str(home), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", **env}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob("*-cache")) if path.exists() else []


def test_programs_are_cached_on_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    expected = home / ".cache" / "snncomp" / "jax"
    assert _run({}, home) == f"dir {expected} {expected}"
    first = _entries(expected)
    assert any(name.startswith("jit_") for name in first), first
    _run({}, home)  # a second process finds them: nothing new to write
    assert _entries(expected) == first


def test_cache_can_be_turned_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _run({"SNNCOMP_COMPILATION_CACHE": "off"}, home) == "dir None None"
    assert not (home / ".cache" / "snncomp" / "jax").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "HOME/.cache/snncomp/jax"),
        ({"SNNCOMP_CACHE": "C"}, "C/jax"),
        ({"SNNCOMP_CACHE": "C", "SNNCOMP_COMPILATION_CACHE": "X"}, "X"),
        ({"SNNCOMP_COMPILATION_CACHE": "0"}, None),
        ({"SNNCOMP_COMPILATION_CACHE": "False"}, None),
        ({"SNNCOMP_COMPILATION_CACHE": ""}, None),
    ],
)
def test_where_the_cache_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str | None
) -> None:
    from snncomp._jax_cache import compilation_cache_dir

    for var in ("SNNCOMP_CACHE", "SNNCOMP_COMPILATION_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "HOME"))
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("C", str(tmp_path / "C")).replace("X", str(tmp_path / "X")) if v else v)
    got = compilation_cache_dir()
    assert got == (None if expected is None else tmp_path / expected)


def test_a_cache_configured_for_jax_is_kept(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    line = _run({"JAX_COMPILATION_CACHE_DIR": str(mine)}, tmp_path / "home")
    assert line == f"dir None {mine}"
    assert _entries(mine)
    assert not (tmp_path / "home" / ".cache" / "snncomp").exists()
