"""NIR graphs exported by other libraries, imported with their convention, agree with the library's own run.

The fixtures in ``tests/fixtures/nir`` were written by ``scripts/nir_fixtures/generate.py`` (pinned
library versions in its ``requirements.txt``): each ``<lib>_<name>.nir`` is the library's own NIR
export of a tiny 4 -> 6 -> 3 network, and ``<lib>_<name>.npz`` holds the input spike raster it was run
on (``input``, [steps, 4]), its time step ``dt`` and the library's own output spikes (``output``,
[steps, 3]; ``hidden``, [steps, 6]). No library is needed here: the graphs are imported with
:func:`snncomp.interop.nir.read_nir` and run on the jax target in float64.

Discrete-time libraries compute step ``k`` from the inputs of steps ``0..k``; the continuous run that
samples the same state puts step ``k`` at time ``(k + 1) dt`` (a bias added at every step has then acted
for ``k + 1`` steps), so input spikes of step ``k`` are given at ``(k + 1) dt`` and an IR spike at time
``t`` counts for step ``ceil(t / dt) - 1``. Spyx tests the previous step's ``v``, so it reports a
crossing one step late (its convention delays projections out of neurons by ``dt``): its record is
compared one step earlier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
jax = pytest.importorskip("jax")

import snncomp  # noqa: E402
from snncomp.interop.nir import read_nir  # noqa: E402
from snncomp.runtime import Spikes  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "nir"


def _load(stem: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"{stem}.npz") as z:
        return {k: z[k] for k in z.files}


def run_steps(net: snncomp.ir.Network, data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    """Each spiking population's spikes as a [steps, n] count raster (step k at time (k + 1) dt), and
    whether a population overflowed its buffer of one spike per neuron and step (more than any
    discrete-time library can emit: that alone is a disagreement)."""
    with jax.enable_x64(True):  # only here: a global switch would leak into other modules of this worker
        return _run_steps(net, data)


def _run_steps(net: snncomp.ir.Network, data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    inp, dt = data["input"], float(data["dt"])
    steps = inp.shape[0]
    k, ch = np.nonzero(inp)
    (src,) = [n.name for n in net.nodes if n.kind == "input"]
    spikes = Spikes.from_lists((k + 1.0) * dt, ch, dtype="float64")
    exe = snncomp.compile(net, t_max=(steps + 0.5) * dt, dtype="float64", spikes_per_neuron=steps)
    rec = exe.run({src: spikes})
    overflow = bool(rec.any_overflow())
    out = {}
    for name, s in rec.spikes.items():
        times = np.asarray(s.times).reshape(-1)
        neurons = np.asarray(s.neurons).reshape(-1)
        keep = neurons >= 0
        step = np.ceil(times[keep] / dt - 1.0 - 1e-6).astype(int)
        r = np.zeros((steps, net.node(name).size), int)
        np.add.at(r, (np.clip(step, 0, steps - 1), neurons[keep]), 1)
        out[name] = r
    return out, overflow


def agreement(ours: np.ndarray, theirs: np.ndarray, tol: int) -> tuple[float, float]:
    """(fraction of the library's spikes matched by one of ours within ``tol`` steps, ours / theirs)."""
    matched = 0
    for j in range(theirs.shape[1]):
        a = list(np.repeat(np.arange(len(ours)), ours[:, j]))
        for s in np.flatnonzero(theirs[:, j]):
            near = [x for x in a if abs(x - s) <= tol]
            if near:
                a.remove(min(near, key=lambda x: abs(x - s)))
                matched += 1
    total = int(theirs.sum())
    return matched / max(total, 1), float(ours.sum()) / max(total, 1)


def _output_and_hidden(net, out: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    (o,) = net.outputs
    (h,) = [n for n in out if n != o]
    return out[o], out[h]


def test_snntorch_leaky_agrees_exactly() -> None:
    """snnTorch Leaky (reset to zero, no reset delay), Affine biases below threshold: exact.

    With instantaneous synapses, ``mem[k] = beta mem[k-1] + x[k]`` is the continuous LIF with
    ``tau = -dt / ln(beta)`` sampled at the steps, and with v settling below threshold a crossing can
    only happen at an input, i.e. on a step. So every spike must land on the library's step; only a
    float32 (snnTorch) vs float64 rounding right at threshold could move one, hence 1 % slack.
    """
    data = _load("snntorch_leaky")
    net = read_nir(FIXTURES / "snntorch_leaky.nir", convention="snntorch")
    assert net.metadata["nir.dt"] == 1e-4 and all(n.instantaneous for n in net.nodes if n.kind == "lif")
    assert any(np.any(np.asarray(n.bias) != 0) for n in net.nodes if n.kind == "lif")
    out, overflow = run_steps(net, data)
    assert not overflow
    o, h = _output_and_hidden(net, out)
    for ours, theirs in ((h, data["hidden"]), (o, data["output"])):
        assert theirs.sum() > 100
        matched, ratio = agreement(ours, theirs.astype(int), tol=0)
        assert matched >= 0.99 and abs(ratio - 1.0) <= 0.01, (matched, ratio)


def test_snntorch_synaptic_agrees_within_a_few_steps() -> None:
    """snnTorch Synaptic: the discrete synapse adds ``syn[k]`` to ``mem[k]`` in the step of the input,
    a jump the continuous model (v continuous, I jumps) cannot make; the imported neuron rises
    over a step or two instead (docs/nir.md). Measured: counts -6 %, 62 % of spikes on the same step
    +-1, 85 % within +-3 steps. Asserted with a little margin; the literal import is far off."""
    data = _load("snntorch_synaptic")
    net = read_nir(FIXTURES / "snntorch_synaptic.nir", convention="snntorch")
    out, overflow = run_steps(net, data)
    assert not overflow
    o, h = _output_and_hidden(net, out)
    for ours, theirs in ((h, data["hidden"]), (o, data["output"])):
        matched, ratio = agreement(ours, theirs.astype(int), tol=3)
        assert matched >= 0.8 and 0.85 <= ratio <= 1.15, (matched, ratio)
        matched1, _ = agreement(ours, theirs.astype(int), tol=1)
        assert matched1 >= 0.5, matched1


def _layers(stem: str, convention: str, lag: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(ours, theirs)] for the hidden and the output layer; ``lag`` steps are taken off the library's
    record (Spyx reports a crossing one step late). Overflowing a buffer fails here."""
    data = _load(stem)
    net = read_nir(FIXTURES / f"{stem}.nir", convention=convention)
    out, overflow = run_steps(net, data)
    assert not overflow
    return list(zip(_output_and_hidden(net, out)[::-1], _theirs(data, lag)))


def _theirs(data: dict[str, np.ndarray], lag: int) -> list[np.ndarray]:
    """The library's hidden and output spikes as count rasters, ``lag`` steps earlier."""
    rasters = []
    for theirs in (data["hidden"].astype(int), data["output"].astype(int)):
        if lag:
            theirs = np.concatenate([theirs[lag:], np.zeros((lag, theirs.shape[1]), int)])
        rasters.append(theirs)
    return rasters


def _assert_exact(stem: str, convention: str, slack: float = 0.01) -> None:
    for ours, theirs in _layers(stem, convention):
        assert theirs.sum() > 100
        matched, ratio = agreement(ours, theirs, tol=0)
        assert matched >= 1.0 - slack and abs(ratio - 1.0) <= slack, (matched, ratio)


def _assert_close(stem: str, convention: str, *, within3: float, within1: float, ratio: tuple, lag: int = 0) -> None:
    for ours, theirs in _layers(stem, convention, lag):
        assert theirs.sum() > 100
        matched, r = agreement(ours, theirs, tol=3)
        assert matched >= within3 and ratio[0] <= r <= ratio[1], (matched, r)
        matched1, _ = agreement(ours, theirs, tol=1)
        assert matched1 >= within1, matched1


def test_norse_lifbox_agrees_exactly() -> None:
    """Norse LIFBoxCell (-> NIR LIF): the Euler step ``v += dt/tau (v_leak - v + x)`` is snnTorch's Leaky
    with decay ``1 - dt/tau`` and gain ``dt/tau``; imported with ``tau_c = -dt / ln(1 - dt/tau)`` and a
    jump of ``dt/tau W`` it is the continuous model sampled at the steps: exact, as for snnTorch."""
    net = read_nir(FIXTURES / "norse_lifbox.nir", convention="norse")
    assert net.metadata["nir.dt"] == 1e-3 and all(n.instantaneous for n in net.nodes if n.kind == "lif")
    _assert_exact("norse_lifbox", "norse")


def test_norse_lif_agrees_within_a_few_steps() -> None:
    """Norse LIFCell (-> CubaLIF): ``i += x; v += dt/tau_mem (v_leak - v + i); i *= 1 - dt/tau_syn`` adds
    the current to v in the step of the input, like snnTorch's Synaptic (same slow-term match, so the
    same tolerance: tau_syn = 5 steps, spikes move by up to a few steps). Measured: counts -3 % / -3 %,
    61 % / 67 % within +-1 step, 93 % / 87 % within +-3 steps."""
    _assert_close("norse_lif", "norse", within3=0.8, within1=0.5, ratio=(0.85, 1.15))


def test_rockpool_lif_agrees_within_a_few_steps() -> None:
    """Rockpool LIFTorch (-> CubaLIF, dt recovered from r): current-based like snnTorch's Synaptic, and
    Rockpool always resets by subtracting the threshold, which keeps the overshoot (more spikes).
    Measured: counts -10 % / -23 %, 50 % / 56 % within +-1 step, 82 % / 72 % within +-3 steps. A replica
    of Rockpool's update with reset to zero instead gives 239 / 130 spikes (not 257 / 156), and snncomp
    matches that replica within +-3 steps for 88 % / 82 %: the reset, not the convention, is most of the gap."""
    net = read_nir(FIXTURES / "rockpool_lif.nir", convention="rockpool")
    assert abs(net.metadata["nir.dt"] - 1e-3) < 1e-9
    _assert_close("rockpool_lif", "rockpool", within3=0.65, within1=0.45, ratio=(0.7, 1.05))


def test_sinabs_lif_agrees_exactly() -> None:
    """Sinabs LIF (SingleSpike, MembraneReset; -> NIR LIF, tau in steps): ``v = alpha v + (1 - alpha) x``
    with ``alpha = exp(-1/tau)`` is the continuous LIF sampled at the steps: exact."""
    _assert_exact("sinabs_lif", "sinabs")


def test_sinabs_iaf_agrees_exactly() -> None:
    """Sinabs IAF (-> NIR IF): ``v += x`` per step, a bias ``b`` per step is ``b/dt`` per second. Exact
    but for a positive bias carrying v over threshold between steps: the IR resets there and keeps
    integrating the bias for the rest of the step, Sinabs resets at the step. Measured: 286 -> 286 and
    190 -> 191 spikes, 100 % / 99 % on the same step; 2 % slack."""
    _assert_exact("sinabs_iaf", "sinabs", slack=0.02)


def test_spyx_lif_agrees_after_its_one_step_lag() -> None:
    """Spyx LIF tests the previous step's v: its spikes leave one step after the crossing (the convention
    delays every projection out of a neuron by dt; the test drops the last layer's reporting lag). Spyx
    always resets by subtracting the threshold, so neurons driven far over threshold fire again:
    measured counts -15 % / -31 %, 78 % / 60 % within +-1 step, 82 % / 65 % within +-3 steps. A replica
    of Spyx's update with reset to zero matches snncomp exactly (175 / 103 spikes, all on their step)."""
    net = read_nir(FIXTURES / "spyx_lif.nir", convention="spyx")
    assert net.metadata["nir.dt"] == 1.0
    assert all(e.delay == 1.0 for e in net.edges if net.node(e.source).kind != "input")
    _assert_close("spyx_lif", "spyx", within3=0.6, within1=0.55, ratio=(0.6, 0.95), lag=1)


def test_spyx_cubalif_agrees_within_a_few_steps() -> None:
    """Spyx CuBaLIF: snnTorch's Synaptic with Spyx's lag and subtractive reset. Measured: counts
    -13 % / -30 %, 51 % / 49 % within +-1 step, 80 % / 68 % within +-3 steps."""
    _assert_close("spyx_cubalif", "spyx", within3=0.6, within1=0.4, ratio=(0.6, 0.95), lag=1)


LIBRARY_STEMS = [
    ("snntorch_leaky", "snntorch"),
    ("snntorch_synaptic", "snntorch"),
    ("norse_lif", "norse"),
    ("norse_lifbox", "norse"),
    ("rockpool_lif", "rockpool"),
    ("sinabs_lif", "sinabs"),
    ("sinabs_iaf", "sinabs"),
    ("spyx_lif", "spyx"),
    ("spyx_cubalif", "spyx"),
]


@pytest.mark.parametrize(("stem", "convention"), LIBRARY_STEMS)
def test_literal_import_disagrees(stem: str, convention: str) -> None:
    """Read as NIR's equations say (Dirac spikes), the graphs are far off: several times the spikes (or
    one every step), none at all (Spyx: r = beta, tau = dt/(1-beta) in steps), or, for Sinabs, whose
    IF/LIF carry ``r = 1``, visibly fewer spikes on the library's step than with the convention."""
    data = _load(stem)
    net = read_nir(FIXTURES / f"{stem}.nir")
    out, overflow = run_steps(net, data)
    o, h = _output_and_hidden(net, out)
    lag = 1 if convention == "spyx" else 0
    pairs = list(zip((h, o), _theirs(data, lag)))
    ratios = [agreement(ours, theirs, tol=3)[1] for ours, theirs in pairs]
    same = [agreement(ours, theirs, tol=0)[0] for ours, theirs in pairs]
    assert overflow or max(ratios) > 2.0 or min(ratios) < 0.5 or min(same) < 0.9, (ratios, same)


def test_fixtures_are_small_and_complete() -> None:
    stems = sorted(p.stem for p in FIXTURES.glob("*.nir"))
    assert stems == sorted(p.stem for p in FIXTURES.glob("*.npz")) == sorted(s for s, _ in LIBRARY_STEMS)
    for stem in stems:
        for ext in (".nir", ".npz"):
            assert (FIXTURES / f"{stem}{ext}").stat().st_size < 50_000
        data = _load(stem)
        assert data["input"].dtype == bool and data["output"].shape[0] == data["input"].shape[0]
