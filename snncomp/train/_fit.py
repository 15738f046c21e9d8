"""``fit``: the training loop (epochs, batches, buffer growth, evaluation, checkpoints) and its ``History``."""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import BufferGrowthWarning, SnnCompError
from ._checkpoints import _latest_checkpoint, load_checkpoint, save_checkpoint
from ._checks import _reported_checks
from ._data import Data, Trainable, _n_samples, _place, _take, batch_sharding
from ._evaluate import evaluate
from ._progress import _Progress
from ._step import _as_params, _build_step, _restrict


@dataclass
class History:
    """Per-epoch records, the final parameters and optimizer state."""

    records: list[dict[str, float]] = field(default_factory=list)
    params: Any = None
    opt_state: Any = None

    def __getitem__(self, key: str) -> list[float]:
        return [r[key] for r in self.records if key in r]

    def to_json(self) -> str:
        """The records as JSON (for ``metrics.json``)."""
        return json.dumps(self.records, indent=1)


def fit(
    exe: Trainable,
    loss: Callable[[Any, Any], jax.Array],
    train_data: Data,
    *,
    optimizer: optax.GradientTransformation | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    seed: int = 0,
    eval_data: Data | None = None,
    accuracy: Callable[[Any, Any], jax.Array] | None = None,
    callbacks: Sequence[Callable[[dict[str, float], Any], bool | None]] = (),
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    params: Any = None,
    trainable: Sequence[str] | None = None,
    project: Callable[[Any], Any] | None = None,
) -> History:
    """Train ``exe.params`` to minimise ``loss(exe.apply(params, inputs), targets)``.

    ``train_data`` (and ``eval_data``) is ``(inputs, targets)``: ``inputs`` a PyTree whose every leaf
    has the samples on axis 0 -- for an executable ``{input_name: Spikes(times=[N, E], neurons=[N, E])}``
    (``Spikes.from_lists`` pads ragged trains) -- and ``targets`` an array (or PyTree) with ``N`` on axis
    0 (labels, target times). Each step takes ``batch_size`` samples along axis 0 of every leaf, in an
    order drawn from ``seed``; a last partial batch is dropped. ``loss(recording, targets)`` and
    ``accuracy(recording, targets)`` get the batch's recording and targets.

    ``optimizer`` defaults to ``optax.adam(1e-3)``. ``accuracy(recording, targets)`` (optional)
    returns the batch's accuracy. Each callback gets the epoch's record and the params; returning
    True stops training. With ``checkpoint_dir`` params and optimizer state are written after each
    epoch (``ckpt-NNNN.npz``); ``resume=True`` continues from the latest one. ``trainable`` names
    the top-level parameter groups to update; by default an executable's ``weight`` group only
    (delays are in seconds, a scale at which a shared learning rate makes no sense: pass
    ``trainable=("weight", "delay")`` with a suitable optimizer to learn them; they are kept >= 0;
    the jax target's ``bias`` group, per population, is learnt with ``trainable=("weight", "bias")``).
    ``project(params) -> params`` is applied after every update (inside ``jit``), e.g. to keep weights
    in the range a chip can realise (:func:`clip_weights`). If ``exe.apply`` takes a ``key`` argument,
    each step passes a fresh PRNG key (a function of ``seed`` and the step), e.g. for noise-aware
    training or for new trial-to-trial noise at every step of hardware in the loop (``bss2-mock``),
    and each epoch's evaluation its own key. Returns the :class:`History`, with the final ``params`` (a
    :class:`~snncomp.runtime.Params` for an executable, whether ``params`` was given as one or as a dict).
    """
    if epochs < 0 or batch_size < 1:
        raise SnnCompError(f"fit: need epochs >= 0 and batch_size >= 1, got epochs={epochs}, batch_size={batch_size}")
    optimizer = optimizer if optimizer is not None else optax.adam(1e-3)
    optimizer = _restrict(optimizer, exe.params if params is None else params, trainable)
    train_step = _build_step(exe, loss, optimizer, accuracy, project)
    # Automatically sized buffers (a population without max_spikes) grow when a batch overflows them;
    # only then is each step's overflow flag read on the host (a sync per step).
    growable = bool(getattr(exe, "auto_buffers", None)) and hasattr(exe, "grow_buffers")
    n = _n_samples(train_data)
    if n < batch_size:
        raise SnnCompError(f"fit: batch_size={batch_size} is larger than the training set ({n} samples)")
    steps = n // batch_size
    params = _as_params(exe.params if params is None else params)
    opt_state = optimizer.init(params)
    history = History()
    start_epoch = 0
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if resume and ckpt_dir is not None and (latest := _latest_checkpoint(ckpt_dir)) is not None:
        params, opt_state, meta = load_checkpoint(latest, params, opt_state)
        start_epoch = int(meta.get("epoch", -1)) + 1
        history.records = list(meta.get("records", []))

    shardings = batch_sharding()
    if shardings is not None and batch_size % len(jax.devices()) != 0:
        shardings = None  # an uneven split would replicate anyway; keep it simple and explicit
    batch_sh, repl_sh = shardings if shardings is not None else (None, None)
    params = _place(params, repl_sh)
    opt_state = _place(opt_state, repl_sh)

    stochastic = train_step.stochastic
    base_key = jax.random.PRNGKey(seed)
    eval_key = jax.random.split(base_key)[1]
    step = train_step.jitted

    bar = _Progress(enabled=progress, total=steps * max(epochs - start_epoch, 0))
    refresh = max(1, steps // 20)
    with _reported_checks("fit"), contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        for epoch in range(start_epoch, epochs):
            order = np.random.default_rng([seed, epoch]).permutation(n)
            t0 = time.perf_counter()
            bar.done_in_epoch = 0
            losses, accs, codes = [], [], []
            for b in range(steps):
                idx = order[b * batch_size : (b + 1) * batch_size]
                inputs = _place(_take(train_data[0], idx), batch_sh)
                targets = _place(_take(train_data[1], idx), batch_sh)
                key = jax.random.fold_in(base_key, epoch * steps + b) if stochastic else base_key
                new_params, new_state, value, acc, overflowed, code = step(params, opt_state, inputs, targets, key)
                codes.append(code)
                while growable and bool(overflowed):
                    # The gradient saw a truncated recording: grow the buffers and redo this step.
                    before = max(exe.auto_buffers.values())  # type: ignore[attr-defined]
                    after = max(exe.grow_buffers().values())  # type: ignore[attr-defined]
                    warnings.warn(
                        f"fit: a batch in epoch {epoch} overflowed the automatically sized spike buffers "
                        f"({before} spikes per neuron); grown to {after}, step repeated (pass "
                        f"spikes_per_neuron={after} to compile, or set max_spikes, to size them yourself)",
                        BufferGrowthWarning,
                        stacklevel=2,
                    )
                    train_step = _build_step(exe, loss, optimizer, accuracy, project)
                    step = train_step.jitted
                    new_params, new_state, value, acc, overflowed, code = step(params, opt_state, inputs, targets, key)
                    codes.append(code)
                params, opt_state = new_params, new_state
                losses.append(value)
                accs.append(acc)
                # Reading a value waits for the device: refresh the bar only ~20 times per epoch.
                if bar.enabled and (b % refresh == refresh - 1 or b == steps - 1):
                    rate = (b + 1) * batch_size / (time.perf_counter() - t0)
                    bar.advance(epoch, float(value), float(acc), rate, b + 1 - bar.done_in_epoch)
            jax.block_until_ready(params)
            seconds = time.perf_counter() - t0
            if codes:  # the steps' checks (inputs, parameters), read back once per epoch
                bad = [c for c in np.asarray(jnp.stack(codes)) if c]
                if bad:
                    train_step.checks.raise_if_failed("fit", bad[0])
            record: dict[str, float] = {
                "epoch": epoch,
                "train_loss": float(np.mean([float(v) for v in losses])),
                "seconds": seconds,
                "samples_per_s": steps * batch_size / seconds,
            }
            if accuracy is not None:
                record["train_accuracy"] = float(np.mean([float(a) for a in accs]))
            if not math.isfinite(record["train_loss"]):
                raise SnnCompError(f"fit: the training loss became {record['train_loss']} in epoch {epoch}")
            if eval_data is not None:
                ev = evaluate(
                    exe,
                    loss,
                    eval_data,
                    params=params,
                    batch_size=batch_size,
                    accuracy=accuracy,
                    key=jax.random.fold_in(eval_key, epoch),
                )
                record.update({f"eval_{k}": v for k, v in ev.items()})
            history.records.append(record)
            bar.epoch_done(record)
            if ckpt_dir is not None:
                save_checkpoint(
                    ckpt_dir / f"ckpt-{epoch:04d}.npz",
                    params,
                    opt_state,
                    {"epoch": epoch, "seed": seed, "records": history.records},
                )
            if any(cb(record, params) for cb in callbacks):
                break
    history.params = params
    history.opt_state = opt_state
    return history
