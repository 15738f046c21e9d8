"""The checks every target shares: compile/run options, ``t_max``, parameters and input spikes.

Concrete values are checked on the host; traced ones in the program (:func:`checked_in_jit`), or collected
as flags for the owner of a ``jit`` boundary (:func:`collect_checks`, :class:`CollectedChecks`). Also the
input warning (:func:`warn_if_inputs_beyond_window`) and the error for bad traced inputs a run counted.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ..errors import InputError, InputWarning, TargetError
from ._params import Params
from ._spikes import Spikes, _default_float, _is_tracer


def _fail_inputs(where: str, problem: str) -> InputError:
    return InputError(f"{where}: {problem}")


# -- input checks shared by every target ------------------------------------------------------------
def check_compile_options(options: Mapping[str, Any]) -> tuple[float | None, np.dtype]:
    """The compile options every target shares: ``(t_max, dtype)``, checked (``TargetError`` if bad)."""
    t_max = options.get("t_max")
    if t_max is not None:
        t = float(t_max)
        if not np.isfinite(t) or t <= 0:
            raise TargetError(f"t_max must be a finite time > 0 in seconds, got {t_max!r}")
        t_max = t
    dtype_opt = options.get("dtype")
    dtype = _default_float() if dtype_opt is None else np.dtype(dtype_opt)
    if dtype not in (np.float32, np.float64):
        raise TargetError(f"dtype must be float32 or float64, got {dtype_opt!r}")
    if dtype == np.float64 and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise TargetError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) before compiling"
        )
    return t_max, dtype


def check_run_options(on_overflow: str, dtype: np.dtype) -> None:
    """The run options every target shares: ``on_overflow`` and a float64 executable under 32-bit JAX."""
    if on_overflow not in ("flag", "raise"):
        raise InputError(f"run(on_overflow={on_overflow!r}): use 'flag' (default) or 'raise'")
    if dtype == np.float64 and not jax.config.jax_enable_x64:  # type: ignore[attr-defined]
        raise InputError(
            "this executable was compiled for float64 but 64-bit JAX is now off; "
            "enable it again (jax.config.update('jax_enable_x64', True)) or recompile"
        )


def check_t_max(t_max: Any, default: float | None) -> Any:
    """``t_max`` of a run (or the compile-time ``default``): a finite time > 0, or a tracer."""
    value = default if t_max is None else t_max
    if value is None:
        raise InputError(
            "no simulated window: pass t_max to snncomp.compile(..., t_max=0.05) or to run(..., t_max=0.05)"
        )
    if _is_tracer(value):
        return value
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise InputError(f"t_max must be a finite time > 0 in seconds, got {value!r}")
    return v


def check_params(params: Params | Mapping[str, Any] | None, reference: Params, dtype: np.dtype) -> Params:
    """``params`` (a :class:`Params` or a dict of that structure; ``None``: ``reference``) checked against
    ``reference`` (an executable's ``params``: structure, shapes, values), as a ``Params`` cast to ``dtype``."""
    if params is None:
        return reference
    optional = {"bias"} & set(reference)
    if not isinstance(params, Mapping) or not ({"weight", "delay"} <= set(params) <= {"weight", "delay"} | optional):
        groups = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        extra = " and optionally 'bias'" if optional else ""
        raise InputError(
            f"params must be a dict with keys 'weight' and 'delay'{extra} (or a snncomp.Params, like exe.params), "
            f"got {groups}"
        )
    if optional and "bias" not in params:  # the compiled biases (params written before biases were parameters)
        params = {**params, "bias": reference["bias"]}
    out: dict[str, dict[str, Array]] = {}
    for group in ("weight", "delay", *sorted(optional)):
        want = reference[group]
        got = params[group]
        if not isinstance(got, Mapping) or set(got) != set(want):
            have = sorted(got) if isinstance(got, Mapping) else type(got).__name__
            raise InputError(f"params['{group}'] must have the keys {sorted(want)} (edge keys), got {have}")
        out[group] = {}
        for key, ref in want.items():
            value = got[key]
            shape = tuple(np.shape(value))
            if shape != tuple(ref.shape):
                raise InputError(f"params['{group}']['{key}']: expected shape {list(ref.shape)}, got {list(shape)}")
            where = f"params['{group}']['{key}']"
            if _is_tracer(value):
                out[group][key] = checked_in_jit(jnp.asarray(value).astype(dtype), *_param_problems(group, where))
                continue
            v = np.asarray(value)
            if group == "delay":
                d = float(v)
                if not np.isfinite(d) or d < 0:
                    raise InputError(f"{where}: a delay must be finite and >= 0, got {d!r}")
            elif group == "bias" and not np.all(np.isfinite(v)):
                i = tuple(int(k) for k in np.argwhere(~np.isfinite(v))[0])
                raise InputError(f"{where}: bias {list(i)} is {float(v[i])!r}; biases must be finite")
            elif not np.all(np.isfinite(v)):
                i = tuple(int(k) for k in np.argwhere(~np.isfinite(v))[0])
                raise InputError(f"{where}: weight {list(i)} is {float(v[i])!r}; weights must be finite")
            out[group][key] = jnp.asarray(value).astype(dtype)
    return Params(**out)


def _param_problems(group: str, where: str) -> tuple[Callable[[Array], Array], list[str]]:
    """The value checks of :func:`check_params` for a traced parameter: a predicate per message."""
    if group == "bias":
        return (lambda b: jnp.stack([jnp.any(~jnp.isfinite(b))])), [
            f"{where}: a bias is NaN or infinite; biases must be finite "
            "(checked inside jit: the parameters were traced)"
        ]
    if group == "delay":
        return (lambda d: jnp.stack([jnp.any(~jnp.isfinite(d) | (d < 0))])), [
            f"{where}: a delay must be finite and >= 0 (checked inside jit: the parameters were traced)"
        ]
    return (lambda w: jnp.stack([jnp.any(~jnp.isfinite(w))])), [
        f"{where}: a weight is NaN or infinite; weights must be finite (checked inside jit: the parameters were traced)"
    ]


def _trace_state() -> Any:
    try:
        from jax.extend.core import get_opaque_trace_state
    except ImportError:  # an older JAX: no way to tell traces apart, so nothing is collected
        return None
    return get_opaque_trace_state()


class CollectedChecks:
    """In-program checks gathered as flags instead of host callbacks (see :func:`collect_checks`)."""

    def __init__(self) -> None:
        self.flags: list[Array] = []
        self.messages: list[str] = []
        self._trace = _trace_state()

    def add(self, flags: Array, messages: Sequence[str]) -> bool:
        """Record ``flags`` (one per message); False where they belong to another trace (a nested transform)."""
        if self._trace is None or _trace_state() != self._trace:
            return False
        self.flags.append(jnp.asarray(flags).reshape(-1))
        self.messages.extend(messages)
        return True

    def code(self) -> Array:
        """``0`` if no check failed, else ``1 +`` the index of the first failed one in :attr:`messages`."""
        if not self.flags:
            return jnp.zeros((), jnp.int32)
        flags = jnp.concatenate(self.flags)
        return jnp.where(jnp.any(flags), jnp.argmax(flags) + 1, 0).astype(jnp.int32)

    def message(self, code: Any) -> str | None:
        """The failed check's message for a :meth:`code` read back on the host (None if none failed)."""
        c = int(code)
        return self.messages[c - 1] if c > 0 else None


_COLLECTOR: contextvars.ContextVar[CollectedChecks | None] = contextvars.ContextVar("snncomp_checks", default=None)


@contextlib.contextmanager
def collect_checks() -> Iterator[CollectedChecks]:
    """Inside this block, traced checks become flags (``.code()``) instead of raising host callbacks.

    For the owner of a ``jit`` boundary (``train.fit``, ``train.make_step``, ``train.evaluate``): it returns
    ``.code()`` from the program and raises on the host. A program without host callbacks can be stored in
    JAX's persistent compilation cache, which a program with them never is (docs/performance.md).
    Checks made under a transform nested inside the block (a ``vmap`` of ``apply``) keep their callbacks.
    """
    sink = CollectedChecks()
    token = _COLLECTOR.set(sink)
    try:
        yield sink
    finally:
        _COLLECTOR.reset(token)


def checked_in_jit(x: Array, problems: Callable[[Array], Array], messages: Sequence[str]) -> Array:
    """``x``, raising at run time (``equinox``'s runtime errors) with the first message whose problem holds.

    The check travels with ``x``: it runs wherever ``x`` is used, under ``jit``, ``grad`` and ``vmap``.
    Inside :func:`collect_checks` it is recorded as a flag instead.
    """
    flags = problems(x)
    sink = _COLLECTOR.get()
    if sink is not None and sink.add(flags, messages):
        return x
    return eqx.branched_error_if(x, jnp.any(flags), jnp.argmax(flags), list(messages))


def check_inputs(
    inputs: Any, spec: tuple[tuple[str, int], ...], network: str, dtype: np.dtype
) -> tuple[dict, dict, tuple[int, ...], bool]:
    """Validate ``inputs`` against ``spec`` (``(name, size)`` per input population of ``network``).

    Returns ``(times, neurons, batch_shape, on_host)`` with ``[samples, events]`` arrays per input;
    concrete inputs are also sorted here (cheap on the host, slow inside XLA) and ``on_host`` is True.
    """
    expected = dict(spec)
    if not isinstance(inputs, Mapping):
        raise InputError(
            f"inputs must be a dict mapping input population names to snncomp.Spikes, got {type(inputs).__name__}"
        )
    unknown = [k for k in inputs if k not in expected]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(expected), n=1)
            hints.append(f"'{k}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise InputError(
            f"inputs: {', '.join(hints)} is not an input population of '{network}'; its inputs are {sorted(expected)}"
        )
    missing = [k for k in expected if k not in inputs]
    if missing:
        raise InputError(
            f"inputs: no spikes given for input population(s) {missing}; give every input "
            "(an empty train is Spikes.from_lists([], []))"
        )
    batch_shape: tuple[int, ...] | None = None
    first = ""
    times: dict[str, np.ndarray | Array] = {}  # numpy where checked on the host, else traced
    neurons: dict[str, np.ndarray | Array] = {}
    all_sorted = True
    for name, size in spec:
        sp = inputs[name]
        where = f"inputs['{name}']"
        if not isinstance(sp, Spikes):
            raise _fail_inputs(
                where, f"expected snncomp.Spikes, got {type(sp).__name__}; build one with Spikes.from_lists"
            )
        t, n = sp.times, sp.neurons
        if np.ndim(t) < 1 or np.shape(t) != np.shape(n):
            raise _fail_inputs(
                where,
                f"times {list(np.shape(t))} and neurons {list(np.shape(n))} must have the same shape [..., E]",
            )
        if not _is_tracer(n) and not np.issubdtype(np.asarray(n).dtype, np.integer):
            raise _fail_inputs(where, f"neurons must be integers, got dtype {np.asarray(n).dtype}")
        bs = tuple(np.shape(t)[:-1])
        if batch_shape is None:
            batch_shape, first = bs, name
        elif bs != batch_shape:
            raise _fail_inputs(
                where, f"batch shape {list(bs)} differs from inputs['{first}'] batch shape {list(batch_shape)}"
            )
        e = np.shape(t)[-1]
        if not _is_tracer(t) and not _is_tracer(n):
            t_np, n_np = np.asarray(t), np.asarray(n)
            check_input_values(where, t_np, n_np, size)
            # Not reshape(-1, e): numpy cannot infer -1 for an empty train (e = 0).
            rows = int(np.prod(bs))
            t_np = t_np.astype(dtype).reshape(rows, e)
            n_np = n_np.astype(np.int32).reshape(rows, e)
            if e > 1 and not np.all(t_np[:, 1:] >= t_np[:, :-1]):
                order = np.argsort(t_np, axis=-1, kind="stable")
                t_np = np.take_along_axis(t_np, order, axis=-1)
                n_np = np.take_along_axis(n_np, order, axis=-1)
            times[name], neurons[name] = t_np, n_np
        else:
            all_sorted = False
            n_j = jnp.asarray(n).astype(jnp.int32)
            t_j = _checked_traced_inputs(where, jnp.asarray(t).astype(dtype), n_j, size)
            rows = int(np.prod(bs))
            times[name] = jnp.reshape(t_j, (rows, e))
            neurons[name] = jnp.reshape(n_j, (rows, e))
    if batch_shape is None:  # a network without inputs: one sample
        batch_shape = ()
    if not spec:
        times, neurons = {"__none__": np.zeros((1, 0), dtype)}, {"__none__": np.zeros((1, 0), np.int32)}
    return times, neurons, batch_shape, all_sorted


def check_input_values(where: str, t: np.ndarray, n: np.ndarray, size: int) -> None:
    """Concrete input spikes: neuron indices in range, times finite and >= 0, padding ``(+inf, -1)``."""

    def at(mask: np.ndarray) -> str:
        idx = np.argwhere(mask)[0]
        pos = ", ".join(map(str, idx[:-1]))
        sample = f"sample [{pos}], " if idx.size > 1 else ""
        return f"{sample}event {idx[-1]}"

    pad = n == -1
    real = ~pad
    bad = real & ((n < 0) | (n >= size))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise _fail_inputs(
            where, f"neuron index {int(n[i])} out of range [0, {size}) at {at(bad)} (padding uses neuron -1)"
        )
    bad = real & np.isnan(t)
    if bad.any():
        raise _fail_inputs(where, f"spike time is NaN at {at(bad)}")
    bad = real & np.isinf(t)
    if bad.any():
        raise _fail_inputs(
            where,
            f"spike time {float(t[tuple(np.argwhere(bad)[0])]):.7g} at {at(bad)} is not finite "
            "(+inf marks padding, which must have neuron -1)",
        )
    bad = real & (t < 0)
    if bad.any():
        raise _fail_inputs(where, f"spike time {float(t[tuple(np.argwhere(bad)[0])]):.7g} s at {at(bad)} is negative")
    bad = pad & ~(np.isposinf(t))
    if bad.any():
        raise _fail_inputs(
            where,
            f"padding entry (neuron -1) at {at(bad)} has time {float(t[tuple(np.argwhere(bad)[0])]):.7g}; "
            "padding must have time +inf",
        )


def _checked_traced_inputs(where: str, t: Array, n: Array, size: int) -> Array:
    """``t`` with :func:`check_input_values`' checks compiled in (for traced inputs; see :func:`checked_in_jit`)."""
    suffix = " (checked inside jit: the inputs were traced; run eagerly for the sample and event)"
    messages = [
        f"{where}: a neuron index is out of range [0, {size}) (padding uses neuron -1){suffix}",
        f"{where}: a spike time is NaN{suffix}",
        f"{where}: a spike time is not finite (+inf marks padding, which must have neuron -1){suffix}",
        f"{where}: a spike time is negative{suffix}",
        f"{where}: a padding entry (neuron -1) has a finite time; padding must have time +inf{suffix}",
    ]

    def problems(t: Array) -> Array:
        pad = n == -1
        real = ~pad
        return jnp.stack(
            [
                jnp.any(real & ((n < 0) | (n >= size))),
                jnp.any(real & jnp.isnan(t)),
                jnp.any(real & jnp.isinf(t)),
                jnp.any(real & (t < 0)),
                jnp.any(pad & ~jnp.isposinf(t)),
            ]
        )

    return checked_in_jit(t, problems, messages)


def warn_if_inputs_beyond_window(times: Mapping[str, Any], neurons: Mapping[str, Any], t_max: Any) -> None:
    """Warn when a run has input spikes but every one lies at or after ``t_max`` (host values only).

    Such a run is valid (those spikes are ignored) but its output is empty, and the usual cause
    is a unit slip: times in milliseconds where seconds are expected.
    """
    if _is_tracer(t_max) or not times:
        return
    arrays = [(np.asarray(times[k]), np.asarray(neurons[k])) for k in times]
    real = [t[n >= 0] for t, n in arrays]
    n_real = sum(r.size for r in real)
    if n_real == 0:
        return
    earliest = min(float(r.min()) for r in real if r.size)
    if earliest >= float(t_max):
        warnings.warn(
            f"every input spike of this run ({n_real} spikes, the earliest at {earliest:.6g}) lies at or after "
            f"t_max = {float(t_max):.6g} s, so all are ignored and the network receives no input; times are in "
            "seconds (1 ms = 1e-3): were they given in milliseconds, or is t_max too short?",
            InputWarning,
            stacklevel=3,
        )


def raise_input_error(n_bad: Array) -> None:
    """Raise for bad traced inputs the run counted (``n_bad``); nothing for tracers or 0."""

    if _is_tracer(n_bad):
        return
    bad = int(n_bad)
    if bad:
        raise InputError(
            f"{bad} sample(s) have input spikes with a negative or non-finite time or a neuron "
            "index out of range (checked inside jit because the inputs were traced)"
        )
