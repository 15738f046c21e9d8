"""Yin-Yang end to end: network, encoding, training, evaluation, artifacts and plots.

The task (Kriener, Göltz & Petrovici, NICE 2022) classifies points of the unit square into yin,
yang and dot from the features ``(x, y, 1 - x, 1 - y)``. Here each feature is latency coded into
one input spike in ``[t_early, t_late]`` plus a bias spike at 0, each on ``input_repeat`` (5)
channels, a ``25 -> hidden -> 3`` network of LIF neurons spiking at most once is trained with
EventProp, and the class is the output neuron that spikes first. Repeating the inputs and keeping
every weight within one BrainScaleS-2 synapse's range (``weight_bound``, 63 / 58) makes the same
network and weights run on the chip (``bss2-mock``) as in software. :func:`train` does it all
and writes the artifacts; the ``snncomp train yinyang`` and ``snncomp demo`` commands and
``examples/yinyang.py`` are thin layers over it.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import snncomp

from .datasets import YinYang, yinyang_splits
from .encode import latency_times
from .errors import SnnCompError, TargetError

__all__ = [
    "N_CLASSES",
    "YinYangConfig",
    "YinYangResult",
    "accuracy_fn",
    "build_network",
    "compile_for",
    "encode",
    "evaluate_on",
    "health_on",
    "loss_fn",
    "prepare_data",
    "train",
]

N_CLASSES = 3
N_INPUTS = 5  # (x, y, 1 - x, 1 - y) and the bias


@dataclass(frozen=True)
class YinYangConfig:
    """Every knob of a Yin-Yang run (times in seconds)."""

    hidden: int = 120
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 1000
    t_max: float = 0.03
    t_early: float = 1e-3
    t_late: float = 9e-3
    bias_time: float = 0.0
    tau_mem: float = 10e-3
    tau_syn: float = 5e-3
    ce_tau: float = 2e-3
    reg_weight: float = 0.01
    rescue_weight: float = 10.0
    hidden_rescue_weight: float = 1.0
    input_repeat: int = 1
    weight_bound: float | None = None
    weight_scale: float | None = None
    gain_noise: float = 0.0
    pretrain_epochs: int = 0
    finetune_learning_rate: float = 3e-5
    calibrate: bool = True
    average_epochs: int = 10
    test_trials: int = 5

    @classmethod
    def chip_ready(cls, **overrides: Any) -> YinYangConfig:
        """The network and training made for BrainScaleS-2 (the ``bss2-mock`` target and deployment).

        Each input on 5 channels (so 5 synapses carry its weight), every weight kept within one
        synapse's range (63 / 58) and trained quantization-aware at the chip's 58 steps per unit.
        On ``bss2-mock`` training first runs ``pretrain_epochs`` (100) in software, then fine-tunes
        in the loop at ``finetune_learning_rate``. ``gain_noise`` (default 0) would add per-neuron
        gain noise in software training; measured over 5 seeds (0.5 % and 1 % on a calibrated chip,
        5 % on an uncalibrated one) it did not raise the deployed accuracy (``docs/results.md``).
        """
        from .targets.bss2.chip import ChipSpec

        chip = ChipSpec()
        base: dict[str, Any] = {
            "input_repeat": 5,
            "weight_bound": chip.weight_bound,
            "weight_scale": chip.default_weight_scale,
            "pretrain_epochs": 100,
        }
        return cls(**{**base, **overrides})

    @property
    def n_inputs(self) -> int:
        """Input channels: the four features and the bias, each repeated ``input_repeat`` times."""
        return N_INPUTS * self.input_repeat


class YinYangError(SnnCompError):
    """A Yin-Yang run could not be set up (e.g. an unavailable target)."""


# -- network and data ------------------------------------------------------------------------------
def build_network(config: YinYangConfig = YinYangConfig()) -> snncomp.Network:
    """The ``5 r -> hidden -> 3`` first-spike network (each neuron spikes at most once; ``r = input_repeat``)."""
    c = config
    net = snncomp.Network("yinyang")
    x = net.input("x", c.n_inputs)
    h = net.lif("h", c.hidden, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1)
    o = net.lif("o", N_CLASSES, tau_mem=c.tau_mem, tau_syn=c.tau_syn, max_spikes=1)
    # Input weights large and spread (every hidden neuron should fire for part of the square);
    # output weights smaller and mostly excitatory so every output neuron spikes at the start.
    # The copies of a repeated input start equal, sharing its weight: the network then computes what
    # the unrepeated one does, and (same inputs, same gradients) trains like it.
    r = c.input_repeat
    w_in = snncomp.init.normal(1.0, 1.0, seed=2 * c.seed + 1)((N_INPUTS, c.hidden))
    net.connect(x, h, weight=np.repeat(w_in / r, r, axis=0))
    net.connect(h, o, init=snncomp.init.normal(0.4, 0.3, seed=2 * c.seed + 2))
    return net


def encode(data: YinYang, config: YinYangConfig = YinYangConfig()) -> tuple[dict[str, Any], np.ndarray]:
    """``({"x": Spikes}, labels)``: the four features latency coded, then the bias, each ``input_repeat`` times."""
    # For r_big = 0.5 the features already lie in [0, 1]; rescale in general.
    values = data.features / (2 * data.r_big)
    r = config.input_repeat
    times = latency_times(values, t_early=config.t_early, t_late=config.t_late, duplicate=r)
    # The bias is repeated like the features: on the chip one synapse could not carry its weight.
    times = np.concatenate([times, np.full((times.shape[0], r), config.bias_time)], axis=1)
    return {"x": snncomp.Spikes.from_first_spike_times(times.astype(np.float32))}, np.asarray(data.labels, np.int32)


def prepare_data(config: YinYangConfig = YinYangConfig()) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Encoded ``train``/``val``/``test`` splits of the standard dataset for ``config.seed``."""
    train_set, val_set, test_set = yinyang_splits(
        config.seed, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test
    )
    return {"train": encode(train_set, config), "val": encode(val_set, config), "test": encode(test_set, config)}


def points_of(config: YinYangConfig, split: str) -> YinYang:
    """The raw points of one split (for plots)."""
    splits = yinyang_splits(config.seed, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test)
    return dict(zip(("train", "val", "test"), splits))[split]


# -- loss and accuracy ---------------------------------------------------------------------------
class _WithParams:
    """An executable whose ``apply`` also returns the params, so the loss can see the weights.

    On the jax target, for weights meant for the chip: ``quantize`` runs the weights the chip would
    realise, ``round(scale * w) / scale``, passing gradients straight through (quantization-aware
    training), and ``noise`` (with a ``key``, i.e. in training) scales each neuron's excitatory and
    inhibitory input by ``1 + noise * N(0, 1)``, drawn afresh per step: the chip's per-neuron
    synaptic gain and threshold/leak offsets act so, and a network trained under them deploys with a
    smaller loss. The bss2-mock target brings its own quantization and mismatch.
    """

    def __init__(self, exe: Any, quantize: float | None = None, noise: float = 0.0):
        self.exe = exe
        self.params = exe.params
        self.scale = quantize
        self.noise = noise
        # A target that draws trial-to-trial noise (bss2-mock) gets the key, so every step and
        # every evaluation is a new trial rather than one draw frozen into the compiled function.
        from .train import _takes_key

        self.keyed = _takes_key(exe)

    def apply(self, params: Any, inputs: Any, key: Any = None) -> tuple[Any, Any]:
        run_params = params if self.scale is None else fake_quantize(params, self.scale)
        if key is not None and self.noise > 0:
            run_params = _gain_noise(run_params, key, self.noise)
        if self.keyed and key is not None:
            return self.exe.apply(run_params, inputs, key=key), params
        return self.exe.apply(run_params, inputs), params

    def run_with_health(self, params: Any, inputs: Any, key: Any = None) -> tuple[Any, Any]:
        """``(recording, health)`` where the target reports the chip's health (``bss2-mock``), else ``health=None``."""
        run = getattr(self.exe, "run_with_health", None)
        if run is None:
            return self.apply(params, inputs, key)[0], None
        run_params = params if self.scale is None else fake_quantize(params, self.scale)
        if key is not None and self.noise > 0:
            run_params = _gain_noise(run_params, key, self.noise)
        return run(inputs, run_params, key=key) if self.keyed and key is not None else run(inputs, run_params)


def _gain_noise(params: Any, key: Any, std: float) -> Any:
    """Each post-synaptic neuron's positive and negative weights scaled by its own ``1 + std * N(0, 1)``."""
    import jax
    import jax.numpy as jnp

    weight = {}
    for i, (k, w) in enumerate(sorted(params["weight"].items())):
        exc, inh = jax.random.normal(jax.random.fold_in(key, i), (2, w.shape[-1]), w.dtype)
        weight[k] = w * jnp.where(w > 0, 1 + std * exc, 1 + std * inh)
    return {**params, "weight": weight}


def _software_quantization(exe: Any, config: YinYangConfig) -> float | None:
    """The scale to fake-quantize with: chip-ready weights on a software target (the chip quantizes itself)."""
    return config.weight_scale if getattr(exe, "target", None) == "jax" else None


def fake_quantize(params: Any, scale: float) -> Any:
    """Weights rounded to the chip's steps ``1 / scale`` in value, identity in gradient (straight through)."""
    import jax
    import jax.numpy as jnp

    def q(w: Any) -> Any:
        x = w * scale
        return w + jax.lax.stop_gradient(jnp.sign(x) * jnp.floor(jnp.abs(x) + 0.5) / scale - w)  # halves away from 0

    return {**params, "weight": jax.tree.map(q, params["weight"])}


def loss_fn(config: YinYangConfig = YinYangConfig()) -> Callable[[Any, Any], Any]:
    """The training loss of ``(recording, params)`` and labels.

    TTFS cross-entropy plus a small term pulling the label neuron early. A neuron that does not
    spike has no gradient, so once the label neuron is silent for a sample nothing in those terms
    can wake it: the *rescue* term then raises the weights from the hidden neurons that did fire
    onto the label neuron (without it training collapses into silent outputs within a few epochs),
    and a hidden neuron silent on the whole batch gets its input weights raised. The rescue terms
    are 0 in value (only their gradients act), so the loss reads as cross-entropy + regularizer.
    """
    import jax
    import jax.numpy as jnp

    c = config

    value_terms = _value_terms(c)

    def loss(out: Any, labels: Any) -> Any:
        rec, params = out
        t = rec.spikes["o"].to_first_spike_times(N_CLASSES)
        value = value_terms(t, labels)
        if c.rescue_weight:
            t_label = jnp.take_along_axis(t, labels[:, None], axis=-1)[:, 0]
            silent = (~jnp.isfinite(t_label)).astype(t.dtype)
            fired = jnp.isfinite(rec.spikes["h"].to_first_spike_times(c.hidden)).astype(t.dtype)
            w_out = params["weight"]["h->o"]
            # ``w - stop_gradient(w)`` is 0 in value but has w's gradient: the rescue steers the update
            # without showing up in the reported loss.
            w_label = (w_out - jax.lax.stop_gradient(w_out)).T[labels]  # [batch, hidden]
            value = value - c.rescue_weight * jnp.mean(silent * jnp.sum(fired * w_label, axis=-1))
        if c.hidden_rescue_weight:
            # The same for hidden neurons silent on a whole batch: raise their input weights.
            fired = jnp.isfinite(rec.spikes["h"].to_first_spike_times(c.hidden)).astype(t.dtype)
            dead = (~jnp.any(fired > 0, axis=0)).astype(t.dtype)
            w_in = params["weight"]["x->h"]
            w_in = w_in - jax.lax.stop_gradient(w_in)
            value = value - c.hidden_rescue_weight * jnp.mean(dead * jnp.sum(w_in, axis=0))
        return value

    return loss


def _value_terms(c: YinYangConfig) -> Callable[[Any, Any], Any]:
    """The loss's value as a batch mean over samples (the rescue terms add gradient only)."""
    from . import losses

    def value(t: Any, labels: Any) -> Any:
        ce = losses.ttfs_cross_entropy(t, labels, tau=c.ce_tau, t_max=c.t_max)
        return ce + c.reg_weight * losses.spike_time_regularizer(t, labels, tau=c.t_max, t_max=c.t_max)

    return value


def accuracy_fn(out: Any, labels: Any) -> Any:
    """Fraction of samples whose earliest output spike is the label's (no spike: wrong)."""
    from . import losses

    rec = out[0] if isinstance(out, tuple) else out
    return losses.first_spike_accuracy(rec.spikes["o"].to_first_spike_times(N_CLASSES), labels)


# -- targets ---------------------------------------------------------------------------------------
def compile_for(
    net: snncomp.Network,
    target: str,
    config: YinYangConfig,
    mock: str = "realistic",
    log: Callable[[str], None] | None = None,
) -> Any:
    """Compile for ``"jax"`` or ``"bss2-mock"`` (with the ``mock`` preset ``ideal``/``realistic``).

    On a preset with fixed-pattern noise and ``config.calibrate``, the emulated chip's per-neuron
    synaptic gain is calibrated first (``cached_calibration``: measured once, then loaded).
    """
    if target == "jax":
        return snncomp.compile(net, target="jax", t_max=config.t_max)
    if target != "bss2-mock":
        raise YinYangError(f"unknown target {target!r}; use 'jax' or 'bss2-mock'")
    if mock not in ("ideal", "realistic"):
        raise YinYangError(f"unknown mock preset {mock!r}; use 'ideal' or 'realistic'")
    try:
        from .targets.bss2.mock import MockConfig, cached_calibration, circuits_of

        preset = MockConfig.ideal() if mock == "ideal" else MockConfig.realistic()
        exe = snncomp.compile(net, target="bss2-mock", t_max=config.t_max, mock=preset)
        if not (config.calibrate and preset.has_fpn):
            return exe
        # Calibrate the circuits this placement uses (placement is deterministic, so compiling again
        # with the calibration lands on the same circuits).
        try:
            calibration = cached_calibration(
                preset,
                exe.chip_seed,
                log=log,
                tau_mem=config.tau_mem,
                tau_syn=config.tau_syn,
                circuits=circuits_of(exe.lowered),
            )
        except TargetError as exc:
            raise YinYangError(
                f"calibrating the emulated chip failed ({exc}); run without it with --no-calibration "
                "(YinYangConfig(calibrate=False))"
            ) from None
        return snncomp.compile(net, target="bss2-mock", t_max=config.t_max, mock=preset, calibration=calibration)
    except (ImportError, TargetError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise YinYangError(f"target 'bss2-mock' is not available: {first}") from None


def bss2_available() -> bool:
    """Whether ``bss2-mock`` compiles here (the emulator package is installed and registered)."""
    try:
        small = YinYangConfig(hidden=4, calibrate=False)
        compile_for(build_network(small), "bss2-mock", small)
    except SnnCompError:
        return False
    return True


# -- evaluation ------------------------------------------------------------------------------------
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

        from . import losses

        self.exe = exe
        self.config = config
        value_terms = _value_terms(config)
        model = _WithParams(exe, _software_quantization(exe, config))

        def metrics(params: Any, inputs: Any, labels: Any, key: Any) -> tuple[Any, Any, Any, Any, Any]:
            rec, health = model.run_with_health(params, inputs, key)
            t_out = rec.spikes["o"].to_first_spike_times(N_CLASSES)
            t_hid = rec.spikes["h"].to_first_spike_times(config.hidden)
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


# -- train -----------------------------------------------------------------------------------------
def optimizer(config: YinYangConfig, learning_rate: Any) -> Any:
    """Adam, with the input weights' steps divided by ``input_repeat``.

    Adam moves every weight by about the learning rate whatever its gradient, so ``r`` copies of an
    input would move the summed drive ``r`` times faster than one input does, and training diverges;
    scaling their steps keeps the dynamics of the unrepeated network.
    """
    import jax
    import optax

    r = float(config.input_repeat)

    def scale(updates: Any, params: Any = None) -> Any:
        if not (isinstance(updates, dict) and "weight" in updates and "x->h" in updates["weight"]):
            return updates
        weight = dict(updates["weight"])
        weight["x->h"] = jax.tree.map(lambda u: u / r, weight["x->h"])
        return {**updates, "weight": weight}

    return optax.adam(learning_rate) if r == 1 else optax.chain(optax.adam(learning_rate), optax.stateless(scale))


@dataclass
class YinYangResult:
    """What :func:`train` measured and wrote."""

    target: str
    config: YinYangConfig
    records: list[dict[str, float]]
    test_accuracy: float
    best_epoch: int | None
    wall_seconds: float
    compile_seconds: float
    samples_per_s: float
    params: Any = field(repr=False, default=None)
    exe: Any = field(repr=False, default=None)
    files: list[str] = field(default_factory=list)
    pretrain: dict[str, Any] | None = None
    start_val_accuracy: float | None = None
    selected: str = ""
    test_trials: list[float] = field(default_factory=list)
    averaged: dict[str, Any] | None = None
    averaged_params: Any = field(repr=False, default=None)

    def metrics(self) -> dict[str, Any]:
        """The contents of ``metrics.json``."""
        return {
            "task": "yinyang",
            "target": self.target,
            "config": asdict(self.config),
            "epochs": self.records,
            "best_epoch": self.best_epoch,
            "selected": self.selected,
            "averaged": self.averaged,
            "final_test_accuracy": self.test_accuracy,
            "test_trials": self.test_trials,
            "wall_seconds": self.wall_seconds,
            "compile_seconds": self.compile_seconds,
            "samples_per_s": self.samples_per_s,
            "time_to_95_test_s": next(
                (r["elapsed_s"] for r in self.records if r.get("test_accuracy", 0.0) >= 0.95), None
            ),
            "pretrain": self.pretrain,
            "start_val_accuracy": self.start_val_accuracy,
            "calibration": None if getattr(self.exe, "calibration", None) is None else self.exe.calibration.text(),
        }


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

    from .train import clip_weights, fit

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
        loss_fn(config),
        data["train"],
        optimizer=optimizer(config, schedule),
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        accuracy=accuracy_fn,
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


# -- artifacts and plots ---------------------------------------------------------------------------
def write_artifacts(
    result: YinYangResult,
    out: Path,
    *,
    evaluator: Any = None,
    data: dict[str, Any] | None = None,
    say: Callable[[str], None] = print,
) -> list[str]:
    """Write ``metrics.json``, ``params.npz``, ``network.json`` (and the bss2 config) and the plots."""
    from . import ir
    from .train import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    files = []
    (out / "metrics.json").write_text(json.dumps(result.metrics(), indent=1, default=float) + "\n")
    files.append("metrics.json")
    save_checkpoint(out / "params.npz", result.params, meta={"target": result.target, "config": asdict(result.config)})
    files.append("params.npz")
    exe = result.exe
    if exe is not None:
        ir.save(exe.network, out / "network.json")
        files.append("network.json")
        if result.target == "bss2-mock" and hasattr(exe, "hardware_config"):
            # The configuration with the trained weights in its synapses: what the chip would be sent.
            exe.hardware_config(result.params).save(out / "hardware_config.json")
            files.append("hardware_config.json")
    files += write_plots(result, out, evaluator=evaluator, data=data, say=say)
    return files


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
