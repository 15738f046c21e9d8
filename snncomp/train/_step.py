"""The training step: forward, gradient, optimizer update and projection in one ``jit`` (``make_step``, ``fit``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import SnnCompError
from ..runtime import GROUPS, Params, with_groups
from ._checks import _Checks, _reported_checks
from ._data import Trainable, _takes_key


def clip_weights(bound: float) -> Callable[[Any], Any]:
    """A ``fit(project=...)`` that clips every weight to ``[-bound, bound]`` (e.g. a chip's synapse range).

    Without it a weight pushed past what the hardware realises keeps growing under a straight-through
    gradient while the chip saturates it, and training stalls.
    """
    if not (np.isfinite(bound) and bound > 0):
        raise SnnCompError(f"clip_weights: bound must be a finite number > 0, got {bound!r}")

    def project(params: Any) -> Any:
        if not (isinstance(params, dict | Params) and "weight" in params):
            return params
        return with_groups(params, weight=jax.tree.map(lambda w: jnp.clip(w, -bound, bound), params["weight"]))

    return project


class TrainStep:
    """One training step in one ``jit``: forward, gradient, optimizer update and projection.

    Built by :func:`make_step`. ``step(params, opt_state, inputs, targets, key=None)`` returns
    ``(params, opt_state, loss, accuracy)`` (accuracy NaN without an ``accuracy`` function);
    ``step.overflowed`` says whether that batch overflowed a spike buffer (then its gradient saw a
    truncated recording: grow the buffers, ``exe.grow_buffers()``, rebuild the step and redo it);
    ``step.init(params)`` is the optimizer's initial state. ``key`` is used only where ``exe.apply``
    draws noise (``step.stochastic``); pass a new one per step there. An executable's parameters may
    be given as a :class:`~snncomp.runtime.Params` or a dict of its groups; they come back as a ``Params``.
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
        return self.optimizer.init(_as_params(params))

    def __call__(
        self, params: Any, opt_state: Any, inputs: Any, targets: Any, key: jax.Array | None = None
    ) -> tuple[Any, Any, jax.Array, jax.Array]:
        if key is None:
            if self._default_key is None:
                self._default_key = jax.random.PRNGKey(0)
            key = self._default_key
        with _reported_checks("step"):
            params, opt_state, value, acc, self.overflowed, code = self.jitted(
                _as_params(params), opt_state, inputs, targets, key
            )
        # Reading the code waits for the step; a check by host callback waited as well, and one jit call
        # per step leaves little host work to overlap (docs/performance.md, "The user's loop").
        self.checks.raise_if_failed("step", code)
        return params, opt_state, value, acc


def _as_params(params: Any) -> Any:
    """An executable's parameters as a :class:`~snncomp.runtime.Params`, a dict of its groups included;
    any other PyTree (another ``Trainable``'s) unchanged.

    Training normalises on the way in: an optimizer state made for a ``Params`` does not match a dict
    (they are different PyTrees), and a user's loop mixes both (``{**params, "weight": ...}``).
    """
    if (
        type(params) is dict
        and {"weight", "delay"} <= set(params) <= set(GROUPS)
        and all(isinstance(g, Mapping) for g in params.values())
    ):
        return Params(**params)
    return params


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
    checks compiled into a user's own jitted gradient (issue 16) make each call wait for its result.
    The step carries those checks out as a code instead (no host callback, so JAX's persistent cache
    keeps it) and raises :class:`InputError` after reading it, which waits for the step as well.
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
        if isinstance(p, dict | Params) and "delay" in p:
            p = with_groups(p, delay=jax.tree.map(lambda d: jnp.maximum(d, 0.0), p["delay"]))  # delays stay >= 0
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


def _restrict(
    optimizer: optax.GradientTransformation, params: Any, trainable: Sequence[str] | None, where: str = "fit"
) -> optax.GradientTransformation:
    """Apply ``optimizer`` to the trainable top-level groups only; the others get zero updates."""
    if not isinstance(params, dict | Params):
        if trainable is not None:
            raise SnnCompError(f"{where}(trainable=...) needs params that are a dict of groups (like exe.params)")
        return optimizer
    if trainable is None:
        # An executable's params: its weights (delays are seconds, biases model voltages: opt in to those).
        trainable = ("weight",) if "weight" in params and set(params) <= {"weight", "delay", "bias"} else tuple(params)
    unknown = sorted(set(trainable) - set(params))
    if unknown:
        raise SnnCompError(f"{where}(trainable=...): unknown parameter groups {unknown}; groups are {sorted(params)}")
    chosen = set(trainable)

    def labels(tree: Any) -> Any:
        # One label per group, a prefix of the tree, built per call: the step may get a Params or a dict
        # whatever ``params`` was (a Params prefix does not match a dict).
        return with_groups(tree, **{k: ("train" if k in chosen else "freeze") for k in tree})

    return optax.multi_transform({"train": optimizer, "freeze": optax.set_to_zero()}, labels)
