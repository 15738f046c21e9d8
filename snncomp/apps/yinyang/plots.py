"""The Yin-Yang run's PNG plots (training curves, decision map, spike raster, hidden spike times)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...datasets import YinYang
from .config import N_CLASSES, YinYangResult
from .data import encode, points_of, prepare_data
from .evaluate import _evaluator


def _pyplot(say: Callable[[str], None]) -> Any:
    try:
        import matplotlib
    except ImportError:
        say('plots skipped: matplotlib is not installed (pip install "snncomp[plot]")')
        return None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_plots(
    result: YinYangResult,
    out: Path,
    *,
    evaluator: Any = None,
    data: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> list[str]:
    """The four PNGs: training curves, decision map, spike raster, hidden spike-time histogram."""
    plt = _pyplot(say)
    if plt is None:
        return []
    config = result.config
    evaluator = evaluator if evaluator is not None else _evaluator(result.exe, config)
    data = data if data is not None else prepare_data(config)
    files = []

    # Training curves.
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(9, 3.5))
    ep = [r["epoch"] for r in result.records]
    ax_l.plot(ep, [r["train_loss"] for r in result.records], label="train")
    ax_l.plot(ep, [r["val_loss"] for r in result.records], label="validation")
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_l.legend()
    ax_a.plot(ep, [r.get("train_accuracy", math.nan) for r in result.records], label="train")
    ax_a.plot(ep, [r["val_accuracy"] for r in result.records], label="validation")
    ax_a.axhline(result.test_accuracy, color="k", ls=":", label=f"test {result.test_accuracy:.3f}")
    ax_a.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    ax_a.legend()
    fig.tight_layout()
    fig.savefig(out / "training_curves.png", dpi=100)
    plt.close(fig)
    files.append("training_curves.png")

    # Decision map over the unit square, with the test points on top.
    # The emulator runs ~100x slower than the simulator: a coarser map keeps the plot at seconds there.
    n_grid = 80 if result.target == "jax" else 40
    g = (np.arange(n_grid) + 0.5) / n_grid
    gx, gy = np.meshgrid(g, g)
    grid = YinYang(points=np.stack([gx.ravel(), gy.ravel()], 1), labels=np.zeros(gx.size, np.int64), r_big=0.5)
    pred = _classes(evaluator(result.params, encode(grid, config))["t_out"]).reshape(n_grid, n_grid)
    test_pts = points_of(config, "test")
    test_ev = evaluator(result.params, data["test"])
    test_pred = _classes(test_ev["t_out"])
    fig, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("viridis", 4)
    ax.imshow(pred + 1, origin="lower", extent=(0, 1, 0, 1), cmap=cmap, vmin=-0.5, vmax=3.5, alpha=0.45)
    right = test_pred == test_pts.labels
    ax.scatter(*test_pts.points[right].T, c=test_pts.labels[right] + 1, cmap=cmap, vmin=-0.5, vmax=3.5, s=6)
    ax.scatter(*test_pts.points[~right].T, c="red", marker="x", s=14, label="misclassified")
    ax.set(xlabel="x", ylabel="y", title=f"decision map ({result.target}), test accuracy {result.test_accuracy:.3f}")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "decision_map.png", dpi=100)
    plt.close(fig)
    files.append("decision_map.png")

    # Spike raster of a few test samples: inputs, hidden, outputs.
    names = ("yang", "yin", "dot")
    picks = [int(np.flatnonzero(test_pts.labels == k)[0]) for k in range(N_CLASSES) if np.any(test_pts.labels == k)]
    n_in = config.n_inputs
    t_in = np.asarray(data["test"][0]["x"].to_first_spike_times(n_in))
    fig, axes = plt.subplots(1, len(picks), figsize=(4 * len(picks), 4), sharey=True)
    for ax, i in zip(np.atleast_1d(axes), picks):
        ms = 1e3
        ax.scatter(t_in[i] * ms, np.arange(n_in), s=12, c="gray", label="input")
        th = test_ev["t_hidden"][i]
        ax.scatter(th * ms, n_in + np.arange(config.hidden), s=4, c="tab:blue", label="hidden")
        to = test_ev["t_out"][i]
        off = n_in + config.hidden
        ax.scatter(to * ms, off + np.arange(N_CLASSES), s=30, c="tab:red", marker="|", label="output")
        ax.set(xlabel="time [ms]", xlim=(0, config.t_max * ms), title=f"{names[test_pts.labels[i]]} sample")
    np.atleast_1d(axes)[0].set_ylabel("neuron (input | hidden | output)")
    np.atleast_1d(axes)[0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "spike_raster.png", dpi=100)
    plt.close(fig)
    files.append("spike_raster.png")

    # Hidden-layer first-spike times over the test set.
    th = test_ev["t_hidden"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(th[np.isfinite(th)] * 1e3, bins=60, color="tab:blue")
    silent = float(np.mean(~np.isfinite(th)))
    ax.set(xlabel="hidden first-spike time [ms]", ylabel="count", title=f"hidden spike times ({silent:.0%} silent)")
    fig.tight_layout()
    fig.savefig(out / "hidden_spike_times.png", dpi=100)
    plt.close(fig)
    files.append("hidden_spike_times.png")
    return files


def _classes(t_out: np.ndarray) -> np.ndarray:
    any_spike = np.isfinite(t_out).any(axis=-1)
    return np.where(any_spike, np.argmin(np.where(np.isfinite(t_out), t_out, np.inf), axis=-1), -1)
