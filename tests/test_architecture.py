"""Layering: the generic layers name no target; the package's imports form no cycle; targets plug in.

``ir <- passes <- runtime (contracts) <- targets <- compile <- train / apps / cli``. The checks read
the source (``ast``), imports inside functions included, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1] / "snncomp"
TARGET_PACKAGES = ("snncomp.targets.jax_event", "snncomp.targets.bss2")
# Generic layers: the pass layer, the runtime's contracts, the CLI (its targets' commands come from the table).
GENERIC = sorted([*(ROOT / "passes").rglob("*.py"), *(ROOT / "runtime").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])
# Documented compatibility aliases (one release): the runtime may name JaxExecutable's new home.
ALIASES = {("runtime/__init__.py", "snncomp.targets.jax_event._executable")}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, strings: bool = True) -> set[str]:
    """Every module ``path`` imports (anywhere in it), resolved to absolute names; with ``strings`` also
    the module names it spells out (``importlib.import_module("snncomp...")`` and the like)."""
    tree = ast.parse(path.read_text())
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out |= {name} | {f"{name}.{a.name}" for a in node.names}
        elif (
            strings
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("snncomp.")
        ):
            out.add(node.value.split(":")[0])  # importlib.import_module("snncomp...") and the like
    return out


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(ROOT)))
def test_generic_layers_name_no_target(path: Path) -> None:
    where = path.relative_to(ROOT).as_posix()
    named = {m for m in _imports(path) if m.startswith(TARGET_PACKAGES) and (where, m) not in ALIASES}
    assert not named, f"{path.relative_to(ROOT)} names target modules {sorted(named)}"


def test_no_import_cycles() -> None:
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        # Import statements only: the target table names its plug-ins by string on purpose (lazy loading).
        for imported in _imports(path, strings=False):
            if imported in modules and imported != name:
                graph.add_edge(name, imported)
    cycles = [c for c in nx.simple_cycles(graph) if set(c) != {"snncomp.ir._models", "snncomp.ir._printer"}]
    assert not cycles, f"import cycles: {cycles}"  # the IR's lazy printer import is the one allowed


_TOY = textwrap.dedent(
    """
    from snncomp.targets import Target

    class ToyExecutable:
        def __init__(self, network, options):
            self.network, self.options = network, options

    def _compile(network, **options):
        return ToyExecutable(network, options)

    TARGET = Target(
        name="toy",
        compile=_compile,
        pipeline="verify,infer-shapes",
        summary="a toy target from an installed package",
        report=lambda result: "TOY REPORT for " + result.network.name,
    )
    """
)


def test_a_target_plugs_in_through_an_entry_point(tmp_path: Path) -> None:
    # An installed distribution declaring the entry point (what pip writes for a plug-in package).
    (tmp_path / "toy_target.py").write_text(_TOY)
    info = tmp_path / "toy_target-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-target\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[snncomp.targets]\ntoy = toy_target:TARGET\n")
    script = textwrap.dedent(
        """
        import numpy as np, snncomp, snncomp.targets
        net = snncomp.Network("toynet")
        x = net.input("x", 2)
        o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
        net.connect(x, o, weight=np.ones((2, 2)))
        assert "toy" in snncomp.targets.names(), snncomp.targets.names()
        exe = snncomp.compile(net, target="toy", answer=42)
        assert type(exe).__name__ == "ToyExecutable" and exe.options == {"answer": 42}
        assert str(snncomp.pipeline("toy")) == "verify,infer-shapes"
        snncomp.ir.save(net.build(), "toynet.json")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    cli = [sys.executable, "-m", "snncomp"]
    out = subprocess.run(
        [*cli, "compile", "toynet.json", "--target", "toy"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "TOY REPORT for toynet" in out.stdout
    listed = subprocess.run([*cli, "targets"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "a toy target from an installed package" in listed.stdout, listed.stdout + listed.stderr


def test_runtime_registration_and_errors() -> None:
    import snncomp
    from snncomp.errors import PipelineError, TargetError
    from snncomp.targets import Target, get, register

    register(Target(name="null-target", compile=lambda network, **o: ("compiled", network.name, o)))
    net = snncomp.Network("n")
    x = net.input("x", 1)
    o = net.lif("o", 1, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, o, weight=1.0)
    assert snncomp.compile(net, target="null-target", k=1) == ("compiled", "n", {"k": 1})
    with pytest.raises(PipelineError, match="target 'null-target' has no pass pipeline"):
        snncomp.pipeline("null-target")
    with pytest.raises(TargetError, match="real BrainScaleS-2 hardware"):
        snncomp.compile(net, target="bss2")
    with pytest.raises(TargetError, match=r"unknown target 'jaxx'.*did you mean 'jax'"):
        get("jaxx")
    with pytest.raises(TargetError, match=r"expected a snncomp\.targets\.Target"):
        register("jax")  # type: ignore[arg-type]
