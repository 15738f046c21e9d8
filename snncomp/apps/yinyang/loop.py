"""The Yin-Yang training loop: :func:`train` (software, or hardware in the loop after software
pretraining), model selection on validation, weight averaging, and the optimizer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import write_artifacts
from .config import YinYangConfig, YinYangError, YinYangResult
from .data import prepare_data
from .evaluate import _evaluator, _trials
from .loss import accuracy_fn, loss_fn
from .model import Readout, _readout_of, _software_quantization, _WithParams, build_network, compile_for


def optimizer(config: YinYangConfig, learning_rate: Any, input_edge: str = Readout.input_edge) -> Any:
    """Adam, with the input weights' (``input_edge``'s) steps divided by ``input_repeat``.

    Adam moves every weight by about the learning rate whatever its gradient, so ``r`` copies of an
    input would move the summed drive ``r`` times faster than one input does, and training diverges;
    scaling their steps keeps the dynamics of the unrepeated network.
    """
    import jax
    import optax

    from ...runtime import Params, with_groups

    r = float(config.input_repeat)

    def scale(updates: Any, params: Any = None) -> Any:
        if not (isinstance(updates, dict | Params) and "weight" in updates and input_edge in updates["weight"]):
            return updates
        weight = dict(updates["weight"])
        weight[input_edge] = jax.tree.map(lambda u: u / r, weight[input_edge])
        return with_groups(updates, weight=weight)

    return optax.adam(learning_rate) if r == 1 else optax.chain(optax.adam(learning_rate), optax.stateless(scale))


def train(
    target: str = "jax",
    hidden: int = 120,
    epochs: int = 100,
    seed: int = 0,
    out: Path | str | None = None,
    progress: bool = True,
    mock: str = "realistic",
    config: YinYangConfig | None = None,
    log: Callable[[str], None] | None = None,
    params: Any = None,
    exe: Any = None,
) -> YinYangResult:
    """Train the Yin-Yang network on ``target`` and evaluate it on the test split.

    Validation accuracy is measured after every epoch; the test accuracy is that of the params
    of the best validation epoch (model selection on validation only). With ``out`` the artifacts
    are written there: ``metrics.json``, ``params.npz``, ``network.json``, ``hardware_config.json``
    (bss2-mock) and the PNG plots (when matplotlib is installed). ``config`` overrides everything
    but ``target``/``mock``; otherwise ``hidden``, ``epochs`` and ``seed`` apply to the defaults.
    ``params`` starts from given weights instead of the network's initial ones (e.g. fine-tuning
    software-trained weights on ``bss2-mock`` in the loop); they take part in model selection as
    epoch -1, so the result is never worse on validation than the weights it started from. ``exe``
    is an executable of this network already compiled for ``target`` (e.g. the one the software
    weights were deployed on): its compiled programs are reused.
    """
    import jax
    import optax

    from ...train import clip_weights, fit

    if config is None:
        config = YinYangConfig(hidden=hidden, epochs=epochs, seed=seed)
    if config.hidden < 1 or config.epochs < 1:
        raise YinYangError(f"need hidden >= 1 and epochs >= 1, got hidden={config.hidden}, epochs={config.epochs}")
    say = log if log is not None else (print if progress else (lambda _msg: None))
    t_start = time.perf_counter()
    pretrained: dict[str, Any] | None = None
    if target == "bss2-mock" and params is None and config.pretrain_epochs > 0:
        # Hardware-in-the-loop steps are costly (the emulator runs ~100x slower than the simulator):
        # train in software first, then let the chip's own imperfections shape the last epochs.
        say(f"pretraining in software (target jax, {config.pretrain_epochs} epochs)")
        pre = train("jax", config=replace(config, epochs=config.pretrain_epochs), progress=progress, log=log)
        pretrained = {
            "epochs": config.pretrain_epochs,
            "jax_test_accuracy": pre.test_accuracy,
            "best_epoch": pre.best_epoch,
            "wall_seconds": pre.wall_seconds,
            "handed_on": pre.selected,
        }
        params = pre.params
        if pre.averaged_params is not None:
            # The chip gets the mean of the last epochs' weights, not the best-validation epoch: single
            # epochs' 6-bit weights scatter by about a point around it, and the best of 100 noisy
            # validation scores is partly luck (docs/results.md, "Weight averaging").
            params = pre.averaged_params
            assert pre.averaged is not None  # set together with averaged_params
            pretrained["handed_on"] = pre.averaged["label"]
            pretrained["jax_test_accuracy"] = pre.averaged["test_accuracy"]
            pretrained["jax_best_epoch_test_accuracy"] = pre.test_accuracy
    net = build_network(config)
    if exe is None:
        exe = compile_for(net, target, config, mock, log=say)
    elif getattr(exe, "target", target) != target:
        raise YinYangError(f"train(exe=...): the executable is for target {exe.target!r}, not {target!r}")
    compile_seconds = time.perf_counter() - t_start
    # The loss, accuracy and optimizer read the compiled network by its populations' and edges' names.
    readout = _readout_of(exe)
    data = prepare_data(config)
    evaluator = _evaluator(exe, config)
    # On a chip with trial-to-trial noise the test accuracy is the mean over several runs (each listed
    # in metrics.json).
    trials = _trials(exe, config)
    if pretrained is not None:
        pretrained["deployed_test_accuracy"], pretrained["deployed_test_trials"] = evaluator.accuracy(
            params, data["test"], trials
        )
        say(
            f"software-trained weights on {target} ({mock}): test accuracy {pretrained['deployed_test_accuracy']:.3f} "
            f"(jax {pretrained['jax_test_accuracy']:.3f}); fine-tuning in the loop"
        )
    steps = config.n_train // config.batch_size
    # Fine-tuning trained weights in the loop runs near the rate software training ended at
    # (1e-3 x 0.05): a fresh Adam at a larger rate first undoes part of what that training reached.
    lr = config.finetune_learning_rate if (target == "bss2-mock" and params is not None) else config.learning_rate
    schedule = optax.cosine_decay_schedule(lr, config.epochs * steps, alpha=0.05)
    start = exe.params if params is None else params
    best: dict[str, Any] = {"accuracy": -1.0, "epoch": -1, "params": start}
    start_val: float | None = None
    # Weight averaging over the last epochs (at most half the run, so a short run does not average in
    # its first, untrained epochs).
    n_average = min(config.average_epochs, config.epochs // 2)
    recent: deque[Any] = deque(maxlen=max(n_average, 1))
    if params is not None:
        # Given weights compete in model selection too (as epoch -1): fine-tuning in the loop keeps
        # them unless an epoch does better on validation.
        best["accuracy"] = start_val = evaluator(start, data["val"])["accuracy"]
        say(f"starting weights: val {start_val:.3f}")

    def on_epoch(record: dict[str, float], params: Any) -> bool:
        ev = evaluator(params, data["val"])
        record["val_loss"] = ev["loss"]
        record["val_accuracy"] = ev["accuracy"]
        # Test accuracy per epoch is recorded for reporting (time to 95 %) only; selection uses validation.
        # On the emulator (~100x slower) it would cost a fifth of each epoch, so there only at the end.
        if target == "jax":
            record["test_accuracy"] = evaluator(params, data["test"])["accuracy"]
        record["elapsed_s"] = time.perf_counter() - t_start
        if ev["accuracy"] > best["accuracy"]:
            best.update(accuracy=ev["accuracy"], epoch=int(record["epoch"]), params=params)
        if n_average > 1:
            recent.append(jax.tree.map(np.asarray, params))
        say(
            f"epoch {int(record['epoch']):3d}  loss {record['train_loss']:.4f}  "
            f"train {record.get('train_accuracy', math.nan):.3f}  val {ev['accuracy']:.3f}  "
            f"{record['samples_per_s']:,.0f} samples/s"
        )
        return False

    history = fit(
        _WithParams(exe, _software_quantization(exe, config), config.gain_noise if exe.target == "jax" else 0.0),
        loss_fn(config, readout),
        data["train"],
        optimizer=optimizer(config, schedule, readout.input_edge),
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        accuracy=partial(accuracy_fn, readout=readout),
        callbacks=[on_epoch],
        progress=False,
        params=start,
        project=clip_weights(config.weight_bound) if config.weight_bound is not None else None,
    )
    averaged: dict[str, Any] | None = None
    averaged_params: Any = None
    if n_average > 1 and len(recent) > 1:
        averaged_params = jax.tree.map(lambda *ws: np.mean(np.stack(ws), axis=0), *recent)
        last = int(history.records[-1]["epoch"])
        label = f"mean of epochs {last - len(recent) + 1}-{last}"
        av = evaluator(averaged_params, data["val"])
        averaged = {"label": label, "val_accuracy": av["accuracy"], "val_loss": av["loss"]}
        say(f"{label}: val {av['accuracy']:.3f}")
        if target != "jax" and av["accuracy"] > best["accuracy"]:
            # In the loop the average competes in model selection; on the jax target it is only
            # reported (and handed on to the chip), selection there stays per epoch.
            best.update(accuracy=av["accuracy"], epoch=None, params=averaged_params)
    test_accuracy, test_trials = evaluator.accuracy(best["params"], data["test"], trials)
    if averaged is not None:
        chosen = best["params"] is averaged_params
        averaged["test_accuracy"] = (
            test_accuracy if chosen else evaluator.accuracy(averaged_params, data["test"], trials)[0]
        )
    if best["epoch"] is None:
        selected = averaged["label"] if averaged is not None else ""
    else:
        selected = "starting weights" if best["epoch"] == -1 else f"epoch {best['epoch']}"
    trained = sum(r["seconds"] for r in history.records)
    result = YinYangResult(
        target=target,
        config=config,
        records=history.records,
        test_accuracy=test_accuracy,
        test_trials=test_trials,
        best_epoch=best["epoch"],
        wall_seconds=time.perf_counter() - t_start,
        compile_seconds=compile_seconds,
        samples_per_s=steps * config.batch_size * len(history.records) / max(trained, 1e-9),
        params=best["params"],
        exe=exe,
        pretrain=pretrained,
        start_val_accuracy=start_val,
        selected=selected,
        averaged=averaged,
        averaged_params=averaged_params,
    )
    if out is not None:
        result.files = write_artifacts(result, Path(out), evaluator=evaluator, data=data, say=say)
    return result
