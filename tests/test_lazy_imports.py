"""`import snncomp` is light; its heavy submodules load on first attribute access (PEP 562).

Each check runs in a fresh interpreter: this test process has long imported everything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

LAZY_SUBMODULES = ("train", "losses", "encode", "datasets")


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_snncomp_loads_no_training_code() -> None:
    out = _run(
        """
        import sys
        import snncomp
        heavy = ["snncomp.train", "snncomp.losses", "snncomp.encode", "snncomp.datasets", "snncomp.runtime",
                 "optax", "jax"]
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", LAZY_SUBMODULES)
def test_submodule_is_an_attribute_after_plain_import(name: str) -> None:
    out = _run(
        f"""
        import sys
        import snncomp
        assert "snncomp.{name}" not in sys.modules
        assert "{name}" in dir(snncomp) and "{name}" in snncomp.__all__
        mod = snncomp.{name}
        assert mod is sys.modules["snncomp.{name}"], mod
        assert getattr(snncomp, "{name}") is mod  # loaded once, then a plain attribute
        print(mod.__name__)
        """
    )
    assert out.strip() == f"snncomp.{name}"


def test_documented_entry_points_resolve() -> None:
    _run(
        """
        import snncomp
        assert callable(snncomp.train.fit) and callable(snncomp.train.make_step)
        assert callable(snncomp.datasets.yinyang) and callable(snncomp.losses.ttfs_cross_entropy)
        """
    )


def test_unknown_attribute_still_raises() -> None:
    _run(
        """
        import snncomp
        try:
            snncomp.no_such_thing
        except AttributeError as e:
            assert "no_such_thing" in str(e)
        else:
            raise AssertionError("expected AttributeError")
        """
    )
