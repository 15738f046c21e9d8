"""``evaluate``: mean loss and accuracy over a data set, one jitted function per (executable, loss, accuracy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import _Checks, _reported_checks
from ._data import Data, Trainable, _n_samples, _take, _takes_key

_EVAL_CACHE: dict[tuple[int, int, int], Any] = {}


def _metrics_fn(exe: Trainable, loss: Callable, accuracy: Callable | None) -> Any:
    """The jitted per-batch (loss, accuracy) function, built once per (executable, loss, accuracy)."""
    cache_key = (id(exe), id(loss), id(accuracy))
    if cache_key not in _EVAL_CACHE:
        keyed = _takes_key(exe)
        checks = _Checks()

        @jax.jit
        def batch_metrics(
            p: Any, inputs: Any, targets: Any, key: jax.Array
        ) -> tuple[jax.Array, jax.Array | float, jax.Array]:
            with checks.collect() as sink:
                # An executable that takes a key (``_takes_key``) has ``apply(params, inputs, key=...)``.
                rec = exe.apply(p, inputs, key=key) if keyed else exe.apply(p, inputs)  # type: ignore[call-arg]
            acc = accuracy(rec, targets) if accuracy is not None else jnp.nan
            return loss(rec, targets), acc, sink.code()

        # Keep the objects alive with the cache entry, so their ids cannot be reused by others.
        _EVAL_CACHE[cache_key] = (batch_metrics, checks, exe, loss, accuracy)
    return _EVAL_CACHE[cache_key][:2]


def evaluate(
    exe: Trainable,
    loss: Callable[[Any, Any], jax.Array],
    data: Data,
    *,
    params: Any = None,
    batch_size: int = 256,
    accuracy: Callable[[Any, Any], jax.Array] | None = None,
    key: jax.Array | None = None,
) -> dict[str, float]:
    """Mean loss (and accuracy) over every sample of ``data`` (jitted once per executable and loss).

    If ``exe.apply`` takes a ``key`` (a noisy target, e.g. ``bss2-mock`` with trial-to-trial noise),
    ``key`` draws that noise: the same key gives the same result; pass a new one for a new trial.
    Default: ``PRNGKey(0)``.
    """
    params = exe.params if params is None else params
    n = _n_samples(data)
    batch_metrics, checks = _metrics_fn(exe, loss, accuracy)
    key = jax.random.PRNGKey(0) if key is None else key
    total_loss, total_acc = 0.0, 0.0
    with _reported_checks("evaluate"):
        for i, start in enumerate(range(0, n, batch_size)):
            idx = np.arange(start, min(start + batch_size, n))
            l_, a_, code = batch_metrics(params, _take(data[0], idx), _take(data[1], idx), jax.random.fold_in(key, i))
            checks.raise_if_failed("evaluate", code)
            total_loss += float(l_) * len(idx)
            total_acc += float(a_) * len(idx)
    out = {"loss": total_loss / max(n, 1)}
    if accuracy is not None:
        out["accuracy"] = total_acc / max(n, 1)
    return out
