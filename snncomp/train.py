"""Training: ``fit`` an executable's parameters with optax, deterministically.

``fit`` works with anything that has ``params`` (a PyTree) and a pure, differentiable
``apply(params, inputs) -> Recording``; both targets' executables do. The loss is
``loss(recording, targets) -> scalar`` (mean over the batch). Gradients come from the target's
adjoint (EventProp on ``jax``; hardware-in-the-loop on ``bss2-mock``).

Determinism: the order of samples in epoch ``e`` comes from ``numpy.random.default_rng([seed, e])``,
so a run resumed from a checkpoint continues exactly as an uninterrupted one. The last incomplete
batch of an epoch is dropped (fixed shapes: one compilation); evaluation uses every sample.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .errors import BufferGrowthWarning, InputError, SnnCompError
from .runtime import CollectedChecks, collect_checks

__all__ = [
    "History",
    "TrainStep",
    "Trainable",
    "batch_sharding",
    "clip_weights",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_step",
    "save_checkpoint",
]

Data = tuple[Any, Any]
"""``(inputs, targets)``: inputs a PyTree (e.g. ``dict[str, Spikes]``, every leaf ``[N, ...]``) and targets
an array ``[N, ...]`` (or PyTree): samples on axis 0 of every leaf (see :func:`fit`)."""


class Trainable(Protocol):
    """What ``fit`` needs from an executable."""

    params: Any

    def apply(self, params: Any, inputs: Any) -> Any: ...


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


def _n_samples(data: Data) -> int:
    leaves = jax.tree.leaves(data[1]) + jax.tree.leaves(data[0])
    n = {int(np.shape(x)[0]) for x in leaves}
    if len(n) != 1:
        raise SnnCompError(f"training data: every array needs the same batch size (leading axis), got {sorted(n)}")
    return n.pop()


def _take(tree: Any, idx: np.ndarray) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[idx], tree)


def batch_sharding() -> tuple[Any, Any] | None:
    """(batch sharding, replicated sharding) over all devices, or None with one device.

    Under ``jax.distributed`` these are the devices of every process.
    """
    devices = jax.devices()
    if len(devices) < 2:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


def _place(tree: Any, sharding: Any) -> Any:
    if sharding is None:
        return tree
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _global_array(x, sharding), tree)


def _global_array(x: Any, sharding: Any) -> jax.Array:
    """A global array over several processes (``jax.distributed``) from the value every process holds.

    Each process builds only its own shards from its copy. ``device_put`` would instead compare the
    whole value across processes, and fails for float64 input (compared after the cast to float32).
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already global: reshard
    x = np.asarray(x)
    x = x.astype(jax.dtypes.canonicalize_dtype(x.dtype), copy=False)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


# -- checkpoints (npz, no pickle) ----------------------------------------------------------------
def _flatten(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {f"{prefix}/{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def save_checkpoint(path: str | Path, params: Any, opt_state: Any = None, meta: dict[str, Any] | None = None) -> Path:
    """Write params (and optimizer state, metadata) to an ``.npz`` file; no pickle involved."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = _flatten("params", params)
    if opt_state is not None:
        arrays.update(_flatten("opt_state", opt_state))
    arrays["meta"] = np.frombuffer(json.dumps(meta or {}).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # the keys are array names, never ``allow_pickle``
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, params_like: Any, opt_state_like: Any = None) -> tuple[Any, Any, dict]:
    """Read a checkpoint into the structure of ``params_like`` (and ``opt_state_like``)."""
    with np.load(Path(path), allow_pickle=False) as data:
        stored = dict(data)

    def fill(prefix: str, like: Any) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
        out = []
        for p, leaf in leaves:
            key = f"{prefix}/{jax.tree_util.keystr(p)}"
            if key not in stored:
                raise SnnCompError(f"checkpoint {path}: missing array {key!r} (was it written for another network?)")
            arr = stored[key]
            if np.shape(arr) != np.shape(leaf):
                raise SnnCompError(f"checkpoint {path}: {key!r} has shape {arr.shape}, expected {np.shape(leaf)}")
            out.append(jnp.asarray(arr, dtype=jnp.asarray(leaf).dtype))
        return jax.tree_util.tree_unflatten(treedef, out)

    params = fill("params", params_like)
    opt_state = fill("opt_state", opt_state_like) if opt_state_like is not None else None
    meta = json.loads(bytes(stored["meta"]).decode()) if "meta" in stored else {}
    return params, opt_state, meta


def _latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("ckpt-*.npz"))
    return found[-1] if found else None


# -- evaluation ------------------------------------------------------------------------------------
_EVAL_CACHE: dict[tuple[int, int, int], Any] = {}


_CHECK_MESSAGE = re.compile(r"EquinoxRuntimeError: (.+?)(?:\n\s*\n|\n-{3,}|\Z)", re.S)


@contextlib.contextmanager
def _reported_checks(where: str) -> Iterator[None]:
    """Turn a failed in-program check (``equinox.error_if`` inside ``jit``) into an :class:`InputError`.

    Inside ``jit`` the check surfaces as a runtime error of the XLA program whose text embeds the
    message; ``fit``/``evaluate`` own that ``jit`` boundary, so they can give the user the message alone.
    """
    # JAX logs the callback's traceback before it raises; the InputError below says it all.
    callback_log = logging.getLogger("jax._src.callback")
    quiet = _DropCheckTracebacks()
    callback_log.addFilter(quiet)
    try:
        yield
    except (RuntimeError, ValueError) as exc:  # the XLA runtime error's class depends on the call path
        found = _CHECK_MESSAGE.findall(str(exc))
        if not found:
            raise
        raise InputError(f"{where}: {found[-1].strip()}") from None
    finally:
        callback_log.removeFilter(quiet)


class _DropCheckTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and "EquinoxRuntimeError" in type(exc).__name__)


class _Checks:
    """The input and parameter checks of one jitted function, carried out of it as a code (no host callback).

    Without host callbacks the program can be stored in JAX's persistent compilation cache, so a new
    process's first ``fit``/``make_step`` step skips XLA (a program with callbacks is never stored).
    """

    def __init__(self) -> None:
        self.sink: CollectedChecks | None = None

    @contextlib.contextmanager
    def collect(self) -> Iterator[CollectedChecks]:
        with collect_checks() as sink:
            self.sink = sink  # filled while tracing; its messages name what a code read back means
            yield sink

    def raise_if_failed(self, where: str, code: Any) -> None:
        """Raise :class:`InputError` naming the failed check, if ``code`` (from the program) says one did."""
        message = self.sink.message(code) if self.sink is not None else None
        if message is not None:
            raise InputError(f"{where}: {message}")


def _takes_key(exe: Trainable) -> bool:
    """Whether ``exe.apply`` draws noise from a ``key`` argument (e.g. a noisy chip, noise-aware training).

    An ``Executable`` says so (``uses_key``; every target's ``apply`` takes ``key``, a deterministic one
    ignores it); any other object with an ``apply`` does by having a ``key`` parameter.
    """
    from .runtime import Executable

    if isinstance(exe, Executable):
        return exe.uses_key
    return "key" in inspect.signature(exe.apply).parameters


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


# -- fit -------------------------------------------------------------------------------------------
def clip_weights(bound: float) -> Callable[[Any], Any]:
    """A ``fit(project=...)`` that clips every weight to ``[-bound, bound]`` (e.g. a chip's synapse range).

    Without it a weight pushed past what the hardware realises keeps growing under a straight-through
    gradient while the chip saturates it, and training stalls.
    """
    if not (np.isfinite(bound) and bound > 0):
        raise SnnCompError(f"clip_weights: bound must be a finite number > 0, got {bound!r}")

    def project(params: Any) -> Any:
        if not (isinstance(params, dict) and "weight" in params):
            return params
        return {**params, "weight": jax.tree.map(lambda w: jnp.clip(w, -bound, bound), params["weight"])}

    return project


class TrainStep:
    """One training step in one ``jit``: forward, gradient, optimizer update and projection.

    Built by :func:`make_step`. ``step(params, opt_state, inputs, targets, key=None)`` returns
    ``(params, opt_state, loss, accuracy)`` (accuracy NaN without an ``accuracy`` function);
    ``step.overflowed`` says whether that batch overflowed a spike buffer (then its gradient saw a
    truncated recording: grow the buffers, ``exe.grow_buffers()``, rebuild the step and redo it);
    ``step.init(params)`` is the optimizer's initial state. ``key`` is used only where ``exe.apply``
    draws noise (``step.stochastic``); pass a new one per step there.
    """

    def __init__(
        self, jitted: Callable, optimizer: optax.GradientTransformation, stochastic: bool, checks: _Checks | None = None
    ):
        self.jitted = jitted
        self.optimizer = optimizer
        self.stochastic = stochastic
        self.checks = checks if checks is not None else _Checks()
        self._default_key: jax.Array | None = None  # made once: building a key costs a dispatch per step
        self.overflowed: jax.Array = jnp.zeros((), bool)  # whether the last step's batch overflowed a buffer

    def init(self, params: Any) -> Any:
        """The optimizer state for ``params``."""
        return self.optimizer.init(params)

    def __call__(
        self, params: Any, opt_state: Any, inputs: Any, targets: Any, key: jax.Array | None = None
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        if key is None:
            if self._default_key is None:
                self._default_key = jax.random.PRNGKey(0)
            key = self._default_key
        with _reported_checks("step"):
            params, opt_state, value, acc, self.overflowed, code = self.jitted(params, opt_state, inputs, targets, key)
        # Reading the code waits for the step; a check by host callback waited as well, and one jit call
        # per step leaves little host work to overlap (docs/performance.md, "The user's loop").
        self.checks.raise_if_failed("step", code)
        return params, opt_state, value, acc


def make_step(
    exe: Trainable,
    loss: Callable[[Any, Any], jax.Array],
    optimizer: optax.GradientTransformation | None = None,
    *,
    trainable: Sequence[str] | None = None,
    accuracy: Callable[[Any, Any], jax.Array] | None = None,
    project: Callable[[Any], Any] | None = None,
    params_like: Any = None,
) -> TrainStep:
    """A training step for a hand-written loop, as fast as ``fit``'s own: everything in one ``jit``.

    The step minimises ``loss(exe.apply(params, inputs), targets)`` with ``optimizer`` (default
    ``optax.adam(1e-3)``) on the ``trainable`` parameter groups (as in :func:`fit`: by default an
    executable's ``weight`` group; the others stay fixed), keeps delays >= 0 and applies ``project``
    (e.g. :func:`clip_weights`) after the update. ``params_like`` gives the parameters' structure where
    they are not ``exe.params``'s. Why one ``jit``: an optimizer update outside it dispatches dozens of small operations
    from Python per step, which on CPU costs about as much as a small network's whole step, and the
    checks compiled into ``exe.apply`` (issue 16) make each call of a jitted gradient wait for its
    result, so that host work no longer overlaps the computation.
    """
    optimizer = optimizer if optimizer is not None else optax.adam(1e-3)
    optimizer = _restrict(optimizer, exe.params if params_like is None else params_like, trainable, "make_step")
    return _build_step(exe, loss, optimizer, accuracy, project)


def _build_step(
    exe: Trainable,
    loss: Callable[[Any, Any], jax.Array],
    optimizer: optax.GradientTransformation,
    accuracy: Callable[[Any, Any], jax.Array] | None,
    project: Callable[[Any], Any] | None,
) -> TrainStep:
    # An ``apply`` with a ``key`` argument is stochastic (e.g. noise-aware training).
    stochastic = _takes_key(exe)

    checks = _Checks()

    def loss_fn(p: Any, inputs: Any, targets: Any, key: jax.Array) -> tuple[jax.Array, Any]:
        with checks.collect() as sink:
            rec = exe.apply(p, inputs, key=key) if stochastic else exe.apply(p, inputs)  # type: ignore[call-arg]
        return loss(rec, targets), (rec, sink.code())

    @jax.jit
    def step(p: Any, s: Any, inputs: Any, targets: Any, key: jax.Array) -> tuple[Any, ...]:
        (value, (rec, code)), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, inputs, targets, key)
        updates, s = optimizer.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        if isinstance(p, dict) and "delay" in p:
            p = {**p, "delay": jax.tree.map(lambda d: jnp.maximum(d, 0.0), p["delay"])}  # delays stay >= 0
        if project is not None:
            p = project(p)
        acc = accuracy(rec, targets) if accuracy is not None else jnp.nan
        return p, s, value, acc, _any_overflow(rec), code

    return TrainStep(step, optimizer, stochastic, checks)


def _any_overflow(rec: Any) -> jax.Array:
    """Whether any spike buffer of the recording (or of a tuple's first item) overflowed in the batch."""
    rec = rec[0] if isinstance(rec, tuple) and rec else rec
    flags = getattr(rec, "overflow", None)
    if not flags:
        return jnp.zeros((), bool)
    return jnp.any(jnp.stack([jnp.any(f) for f in flags.values()]))


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
    and each epoch's evaluation its own key. Returns the :class:`History`, with the final ``params``.
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
    params = exe.params if params is None else params
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


def _restrict(
    optimizer: optax.GradientTransformation, params: Any, trainable: Sequence[str] | None, where: str = "fit"
) -> optax.GradientTransformation:
    """Apply ``optimizer`` to the trainable top-level groups only; the others get zero updates."""
    if not isinstance(params, dict):
        if trainable is not None:
            raise SnnCompError(f"{where}(trainable=...) needs params that are a dict of groups (like exe.params)")
        return optimizer
    if trainable is None:
        # An executable's params: its weights (delays are seconds, biases model voltages: opt in to those).
        trainable = ("weight",) if "weight" in params and set(params) <= {"weight", "delay", "bias"} else tuple(params)
    unknown = sorted(set(trainable) - set(params))
    if unknown:
        raise SnnCompError(f"{where}(trainable=...): unknown parameter groups {unknown}; groups are {sorted(params)}")
    labels = {k: ("train" if k in trainable else "freeze") for k in params}
    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)


class _Progress:
    """A rich progress bar showing epoch, loss, accuracy and samples/s (or nothing)."""

    def __init__(self, *, enabled: bool, total: int):
        self.enabled = enabled and total > 0
        self.done_in_epoch = 0
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._p = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.3f}  {task.fields[rate]:,.0f} samples/s"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._task = self._p.add_task("train", total=total, epoch=0, loss=float("nan"), acc=float("nan"), rate=0.0)
        self._p.start()

    def advance(self, epoch: int, loss: float, acc: float, rate: float, steps: int) -> None:
        self.done_in_epoch += steps
        self._p.update(self._task, advance=steps, epoch=epoch, loss=loss, acc=acc, rate=rate)

    def epoch_done(self, record: dict[str, float]) -> None:
        if not self.enabled:
            return
        parts = [f"epoch {record['epoch']}", f"loss {record['train_loss']:.4f}"]
        for key in ("train_accuracy", "eval_loss", "eval_accuracy"):
            if key in record:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{record['samples_per_s']:,.0f} samples/s")
        self._p.console.log("  ".join(parts))

    def close(self) -> None:
        if self.enabled:
            self._p.stop()
