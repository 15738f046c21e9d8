"""Evaluating Yin-Yang weights on a whole split: accuracy, loss, spike times and the chip's health.

The evaluator of an executable is built (and compiled) once and runs every split in fixed-size
chunks; on a chip with trial-to-trial noise, test accuracies are means over several trials.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import N_CLASSES, YinYangConfig
from .loss import _value_terms
from .model import _readout_of, _software_quantization, _WithParams

_EVAL_CHUNK = 256  # samples per evaluation call: every split and plot grid shares one compiled program
_EVALUATORS: dict[tuple, Any] = {}


def _evaluator(exe: Any, config: YinYangConfig) -> _Evaluator:
    """The evaluator of ``exe`` under ``config``'s loss, built (and compiled) once per executable."""
    c = config
    key = (id(exe), c.hidden, c.ce_tau, c.t_max, c.reg_weight, _software_quantization(exe, c), c.seed)
    if key not in _EVALUATORS:
        if len(_EVALUATORS) > 16:  # executables are large; keep only recent ones
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        _EVALUATORS[key] = _Evaluator(exe, config)  # it holds ``exe``, so the id stays unique while cached
    return _EVALUATORS[key]


class _Evaluator:
    """Accuracy, loss, first-spike times (and the chip's health counters) of a whole split.

    The split runs in chunks of ``_EVAL_CHUNK`` samples (the last one padded), so one compiled program
    serves every split size and plot grid of an executable: compiling the emulator's program takes
    several seconds, running a chunk milliseconds.
    """

    def __init__(self, exe: Any, config: YinYangConfig):
        import jax
        import jax.numpy as jnp

        from ... import losses

        self.exe = exe
        self.config = config
        value_terms = _value_terms(config)
        model = _WithParams(exe, _software_quantization(exe, config))
        names = _readout_of(exe)

        def metrics(params: Any, inputs: Any, labels: Any, key: Any) -> tuple[Any, Any, Any, Any, Any]:
            rec, health = model.run_with_health(params, inputs, key)
            t_out = rec.spikes[names.output].to_first_spike_times(N_CLASSES)
            t_hid = rec.spikes[names.hidden].to_first_spike_times(config.hidden)
            per_sample = jax.vmap(lambda t, y: value_terms(t[None], y[None]))(t_out, labels)
            correct = losses.first_spike_class(t_out) == jnp.asarray(labels)
            return per_sample, correct, t_out, t_hid, health

        self._metrics = jax.jit(metrics)
        # Evaluations on a noisy chip are trials: each call draws new trial-to-trial noise, in a
        # sequence fixed by the seed (a software target ignores the key).
        self._key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x5EED)
        self._calls = 0

    def accuracy(
        self, params: Any, data: tuple[dict[str, Any], np.ndarray], trials: int = 1
    ) -> tuple[float, list[float]]:
        """Mean accuracy over ``trials`` runs (new trial-to-trial noise each) and the runs' accuracies."""
        runs = [self(params, data)["accuracy"] for _ in range(trials)]
        return float(np.mean(runs)), runs

    def __call__(self, params: Any, data: tuple[dict[str, Any], np.ndarray]) -> dict[str, Any]:
        """``loss``, ``accuracy``, ``t_out``, ``t_hidden`` and ``health`` (``None`` off the chip) of ``data``."""
        import jax

        inputs, labels = data
        n = len(labels)
        key = jax.random.fold_in(self._key, self._calls)
        self._calls += 1
        outs = []
        for i, start in enumerate(range(0, n, _EVAL_CHUNK)):
            idx = np.arange(start, start + _EVAL_CHUNK)
            idx = np.where(idx < n, idx, start)  # padding repeats a real sample and is cut off below
            chunk = jax.tree.map(lambda a, idx=idx: np.asarray(a)[idx], (inputs, np.asarray(labels)))
            outs.append(self._metrics(params, *chunk, jax.random.fold_in(key, i)))

        def joined(*parts: Any) -> Any:
            if parts[0] is None:
                return None
            arrays = [np.asarray(p) for p in parts]
            if arrays[0].ndim == 0:  # a per-run value (e.g. weights saturated by this run's re-quantization)
                return arrays[0]
            return np.concatenate(arrays)[:n]

        per_sample, correct, t_out, t_hid, health = jax.tree.map(joined, *outs, is_leaf=lambda x: x is None)
        return {
            "loss": float(np.mean(per_sample)),
            "accuracy": float(np.mean(correct)),
            "t_out": t_out,
            "t_hidden": t_hid,
            "health": health,
        }


def evaluate_on(exe: Any, params: Any, data: tuple[dict[str, Any], np.ndarray], config: YinYangConfig) -> float:
    """Test accuracy of ``params`` run on ``exe`` (e.g. JAX-trained weights deployed on ``bss2-mock``).

    On a chip with trial-to-trial noise, the mean over ``config.test_trials`` runs.
    """
    return _evaluator(exe, config).accuracy(params, data, _trials(exe, config))[0]


def health_on(exe: Any, params: Any, data: tuple[dict[str, Any], np.ndarray], config: YinYangConfig) -> Any:
    """The chip's health counters (``MockHealth``, per sample) of one run of ``data``; ``None`` off the chip."""
    return _evaluator(exe, config)(params, data)["health"]


def _trials(exe: Any, config: YinYangConfig) -> int:
    """Runs per test evaluation: ``config.test_trials`` where the target has trial-to-trial noise, else 1."""
    # A single run on the noisy chip scatters by about half a point (docs/results.md).
    noisy = getattr(getattr(exe, "mock", None), "has_trial_noise", False)
    return max(config.test_trials, 1) if noisy else 1
