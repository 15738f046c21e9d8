"""The shared runtime: ``compile``, ``Executable``, ``Spikes``, ``Recording``.

::

    exe = snncomp.compile(net, target="jax", t_max=50e-3)
    x = snncomp.Spikes.from_lists([[0.0, 1e-3], [2e-3]], [[0, 3], [1]])   # a batch of 2 samples
    rec = exe.run({"x": x})
    rec.spikes["out"].to_first_spike_times(3)      # [2, 3], +inf where a neuron stayed silent
    rec.overflow["out"]                            # [2] bool

Conventions:

* Spike trains are :class:`Spikes`: ``times`` ``[..., E]`` and ``neurons``
  ``[..., E]`` (int32), sorted by time per sample, padded with ``times = +inf``,
  ``neurons = -1``; leading axes are the batch.
* The simulated window is ``[0, t_max)``. Input spikes at or after ``t_max``
  are ignored (they cannot influence the window) and nothing at or after
  ``t_max`` is produced.
* Inputs and parameters are validated on the host before the jitted run when
  they are concrete (names, shapes, times finite and ``>= 0``, neuron indices in
  range, padding consistent; weights finite, delays finite and ``>= 0``). When
  they are traced (the caller's ``jit``, ``grad``, ``vmap``, ``train.fit``) the
  same value checks are compiled into the program with ``equinox.error_if``: a
  bad value raises at run time with the eager check's message (without the
  sample and event, which only the host knows).
* Populations that a pass removed (``canonicalize`` drops those that reach no
  output) are named as removed, with the reason, when a recording, a trace
  request or a report is asked for them (:class:`~snncomp.errors.PopulationError`).
* Event buffers have the sizes the ``schedule`` pass chose (``max_spikes`` ×
  size, or ``spikes_per_neuron`` × size for unbounded populations). Exceeding
  one is never silent: ``Recording.overflow`` flags the population and sample,
  and ``run(..., on_overflow="raise")`` raises :class:`BufferOverflowError`.

Targets are looked up in a registry (:func:`register_target`), so other
targets (``bss2-mock``) plug in without touching this module.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._jax_cache import configure_compilation_cache
from .errors import BufferOverflowError, InputError, InputWarning, PopulationError, TargetError
from .ir import Network

# Compiled programs persist across processes (docs/performance.md, "First calls"): set before any compile.
configure_compilation_cache()

__all__ = [
    "BufferOverflowError",
    "Executable",
    "InputError",
    "Populations",
    "Recording",
    "Report",
    "Spikes",
    "Trace",
    "compile",
    "register_target",
    "targets",
]


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _default_float() -> np.dtype:
    return np.dtype(np.float64 if jax.config.jax_enable_x64 else np.float32)


# --------------------------------------------------------------------------- Spikes


class Spikes(eqx.Module):
    """Spike trains: ``times`` and ``neurons``, each ``[..., E]``, sorted by time per sample.

    Padding entries have ``times = +inf`` and ``neurons = -1``. Leading axes
    are batch axes. Build with :meth:`from_lists` or :meth:`from_first_spike_times`.
    """

    times: Float[Array, "*batch E"]
    neurons: Int[Array, "*batch E"]

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """The leading (batch) axes."""
        return tuple(self.times.shape[:-1])

    @property
    def capacity(self) -> int:
        """Events per sample, padding included (``E``)."""
        return int(self.times.shape[-1])

    def count(self) -> Array:
        """Number of real (non-padding) spikes per sample, ``[...]``."""
        return jnp.sum(jnp.asarray(self.neurons) >= 0, axis=-1)

    @classmethod
    def from_lists(
        cls,
        times: Sequence[float] | Sequence[Sequence[float]],
        neurons: Sequence[int] | Sequence[Sequence[int]],
        *,
        capacity: int | None = None,
        dtype: Any = None,
    ) -> Spikes:
        """Spikes from one sample's lists, or a batch (list of lists), sorted and padded.

        ``capacity`` pads every sample to that many events (default: the longest).
        """
        dtype = np.dtype(dtype) if dtype is not None else _default_float()
        batched = len(times) > 0 and np.ndim(times[0]) == 1
        t_rows = [np.asarray(t, np.float64).reshape(-1) for t in times] if batched else [np.asarray(times, np.float64)]
        n_rows = [np.asarray(n).reshape(-1) for n in neurons] if batched else [np.asarray(neurons)]
        if len(t_rows) != len(n_rows):
            raise InputError(f"Spikes.from_lists: {len(t_rows)} time lists but {len(n_rows)} neuron lists")
        longest = max((len(t) for t in t_rows), default=0)
        cap = longest if capacity is None else capacity
        if cap < longest:
            raise InputError(f"Spikes.from_lists: capacity={capacity} is smaller than the longest sample ({longest})")
        out_t = np.full((len(t_rows), cap), np.inf)
        out_n = np.full((len(t_rows), cap), -1, np.int64)
        for b, (t, n) in enumerate(zip(t_rows, n_rows)):
            if t.shape != n.shape:
                raise InputError(
                    f"Spikes.from_lists: sample {b} has {t.size} times but {n.size} neuron indices; "
                    "give one neuron index per spike time"
                )
            if n.size and not np.issubdtype(n.dtype, np.integer) and not np.all(np.mod(n, 1) == 0):
                raise InputError(f"Spikes.from_lists: sample {b}: neuron indices must be integers, got {n[:5]}")
            order = np.argsort(t, kind="stable")
            out_t[b, : t.size] = t[order]
            out_n[b, : t.size] = n[order]
        if not batched:
            out_t, out_n = out_t[0], out_n[0]
        return cls(times=jnp.asarray(out_t.astype(dtype)), neurons=jnp.asarray(out_n.astype(np.int32)))

    @classmethod
    def from_first_spike_times(cls, first: Any, *, dtype: Any = None) -> Spikes:
        """One spike per neuron at ``first[..., i]`` (``+inf`` or NaN: no spike), sorted; ``E = size``."""
        first = jnp.asarray(first, dtype=dtype if dtype is not None else None)
        if not jnp.issubdtype(first.dtype, jnp.floating):
            first = first.astype(_default_float())
        real = jnp.isfinite(first)
        key = jnp.where(real, first, jnp.inf)
        order = jnp.argsort(key, axis=-1, stable=True)
        times = jnp.take_along_axis(key, order, axis=-1)
        neurons = jnp.where(jnp.isfinite(times), order, -1).astype(jnp.int32)
        return cls(times=times, neurons=neurons)

    def to_first_spike_times(self, size: int) -> Array:
        """The first spike time of each of ``size`` neurons, ``[..., size]`` (``+inf`` if silent)."""
        t = jnp.asarray(self.times)
        n = jnp.asarray(self.neurons)
        hit = n[..., :, None] == jnp.arange(size)
        return jnp.min(jnp.where(hit, t[..., :, None], jnp.inf), axis=-2)

    def to_lists(self) -> Any:
        """Back to lists: ``(times, neurons)`` for one sample, a (nested) list of them for a batch."""
        t = np.asarray(self.times)
        n = np.asarray(self.neurons)

        def rec(t: np.ndarray, n: np.ndarray) -> Any:
            if t.ndim == 1:
                real = n >= 0
                return t[real].tolist(), n[real].astype(int).tolist()
            return [rec(a, b) for a, b in zip(t, n)]

        return rec(t, n)

    def __repr__(self) -> str:
        try:
            total = int(np.sum(np.asarray(self.neurons) >= 0))
            info = f", spikes={total}"
        except Exception:  # traced: no values
            info = ""
        return f"Spikes(batch={self.batch_shape}, capacity={self.capacity}{info})"


# --------------------------------------------------------------------------- Recording


class Populations(dict):
    """A ``dict`` of per-population results that names a removed population when asked for it.

    ``removed`` maps the name of each population a pass removed to the reason
    (e.g. ``canonicalize``: it reaches no output). A PyTree like a ``dict``; the
    reasons travel as static data.
    """

    def __init__(self, items: Any = (), removed: Mapping[str, str] | None = None):
        super().__init__(items)
        self.removed: dict[str, str] = dict(removed or {})

    def __missing__(self, key: Any) -> Any:
        raise PopulationError(population_problem(key, self.removed, sorted(self)))


def population_problem(name: Any, removed: Mapping[str, str], available: Sequence[str]) -> str:
    """Why ``name`` is not among ``available``: removed by a pass (and why), or unknown (with a hint)."""
    if name in removed:
        return f"population {name!r} is not in the compiled network: it was {removed[name]}"
    close = difflib.get_close_matches(str(name), list(available), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no population {name!r}{hint}; the result holds {list(available)}"


def _flatten_populations(p: Populations) -> tuple[list, tuple]:
    keys = sorted(p)
    return [p[k] for k in keys], (tuple(keys), tuple(sorted(p.removed.items())))


def _unflatten_populations(aux: tuple, children: Any) -> Populations:
    keys, removed = aux
    return Populations(zip(keys, children), dict(removed))


jax.tree_util.register_pytree_node(Populations, _flatten_populations, _unflatten_populations)


class Trace(eqx.Module):
    """Membrane potential ``v`` and synaptic current ``i``, each ``[..., G, n]``, at ``times`` ``[G]``."""

    times: Float[Array, " G"]
    v: Float[Array, "*batch G n"]
    i: Float[Array, "*batch G n"]


class Recording(eqx.Module):
    """What a run produced.

    ``spikes[pop]``: the spikes of each ``lif`` population. ``overflow[pop]``:
    ``[...]`` bool, True where the population's buffer was too small (that
    sample stopped at the overflowing spike; populations downstream saw only
    the spikes before it). ``traces[pop]``: ``v``/``I`` on the requested grid.
    """

    spikes: dict[str, Spikes]
    overflow: dict[str, Bool[Array, "*batch"]]
    traces: dict[str, Trace]
    t_max: Float[Array, ""]

    def any_overflow(self) -> Array:
        """Per sample: did any population overflow?"""
        flags = list(self.overflow.values())
        if not flags:
            return jnp.zeros((), bool)
        return jnp.any(jnp.stack(flags), axis=0)

    def __repr__(self) -> str:
        pops = ", ".join(f"{k}: {v!r}" for k, v in self.spikes.items())
        tr = f", traces={sorted(self.traces)}" if self.traces else ""
        return f"Recording({{{pops}}}{tr})"


# --------------------------------------------------------------------------- Executable


@dataclass(frozen=True)
class Report:
    """What ``Executable.report()`` returns; ``str(report)`` is the readable table."""

    target: str
    network: str
    dtype: str
    t_max: float | None
    pipeline: str
    schedule: str
    stages: list[tuple[int, str, list[str]]]
    buffers: dict[str, int]
    resources: dict[str, int]
    compile_seconds: float
    remarks: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)
    """Populations a pass removed, with the reason."""

    def removed_lines(self) -> list[str]:
        """The ``removed:`` section of the table (empty when nothing was removed)."""
        if not self.removed:
            return []
        return ["removed populations:"] + [f"  - {name}: {why}" for name, why in sorted(self.removed.items())]

    def __str__(self) -> str:
        t_max = "per call" if self.t_max is None else f"{self.t_max!r} s"
        lines = [
            f"executable '{self.network}' -> target {self.target} ({self.dtype}), t_max = {t_max}",
            f"pipeline: {self.pipeline}   (compiled in {self.compile_seconds * 1e3:.1f} ms)",
            f"schedule: {self.schedule}",
            "stages:",
        ]
        for index, strategy, pops in self.stages:
            lines.append(f"  {index} {strategy}")
            lines.extend(f"      {p}" for p in pops)
        bufs = ", ".join(f"{k}={v}" for k, v in sorted(self.buffers.items())) or "none"
        lines.append(f"buffers (spikes per sample): {bufs}")
        lines.append("resources: " + ", ".join(f"{k}={v}" for k, v in self.resources.items()))
        lines.extend(self.removed_lines())
        if self.remarks:
            lines.append("remarks:")
            lines.extend(f"  - {r}" for r in self.remarks)
        return "\n".join(lines)


class Executable(abc.ABC):
    """A compiled network, ready to run on its target."""

    target: str
    # Whether ``apply``'s ``key`` draws noise (then training passes a fresh key per step).
    uses_key: bool = False

    @property
    @abc.abstractmethod
    def params(self) -> dict[str, dict[str, Array]]:
        """Trainable parameters: ``{"weight": {edge_key: [src, tgt]}, "delay": {edge_key: scalar}}``."""

    @property
    @abc.abstractmethod
    def lowered(self) -> Any:
        """The target's artifact (``EventProgram`` for ``jax``)."""

    @abc.abstractmethod
    def run(
        self,
        inputs: Mapping[str, Spikes],
        params: Any = None,
        *,
        t_max: float | None = None,
        on_overflow: Literal["flag", "raise"] = "flag",
        trace_times: Any = None,
        trace_populations: Sequence[str] | None = None,
    ) -> Recording:
        """Simulate the network on ``inputs`` (one ``Spikes`` per input population, batch axes first).

        ``params`` defaults to :attr:`params` (same structure); ``t_max`` overrides the compile-time
        window; ``on_overflow="raise"`` raises :class:`BufferOverflowError` when a spike buffer was too
        small (``"flag"``: only ``Recording.overflow`` says so); ``trace_times`` (``[G]`` seconds) with
        ``trace_populations`` records membrane traces where the target can. A target may take more
        keywords (``bss2-mock``: ``trial``, ``key``).
        """

    @abc.abstractmethod
    def report(self) -> Report:
        """Schedule, stages, buffer sizes and resources."""

    def apply(
        self,
        params: Any,
        inputs: Mapping[str, Spikes],
        key: Any = None,
        *,
        t_max: float | None = None,
        trace_times: Any = None,
        trace_populations: Sequence[str] | None = None,
    ) -> Recording:
        """``run`` with the parameters first and overflow only flagged: the pure form for ``jax.grad``/``train.fit``.

        ``key`` (a JAX PRNG key) draws the run's noise on a target that has some (``bss2-mock``'s
        trial-to-trial noise); a deterministic target ignores it, so one call works on every target.
        """
        del key  # deterministic by default; a noisy target overrides apply
        return self.run(
            inputs,
            params,
            t_max=t_max,
            on_overflow="flag",
            trace_times=trace_times,
            trace_populations=trace_populations,
        )


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
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise TargetError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) before compiling"
        )
    return t_max, dtype


def check_run_options(on_overflow: str, dtype: np.dtype) -> None:
    """The run options every target shares: ``on_overflow`` and a float64 executable under 32-bit JAX."""
    if on_overflow not in ("flag", "raise"):
        raise InputError(f"run(on_overflow={on_overflow!r}): use 'flag' (default) or 'raise'")
    if dtype == np.float64 and not jax.config.jax_enable_x64:
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


def check_params(params: Any, reference: dict[str, dict[str, Array]], dtype: np.dtype) -> dict:
    """``params`` with the structure and shapes of ``reference`` (an executable's ``params``), cast to ``dtype``."""
    if params is None:
        return reference
    optional = {"bias"} & set(reference)
    if not isinstance(params, Mapping) or not ({"weight", "delay"} <= set(params) <= {"weight", "delay"} | optional):
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        extra = " and optionally 'bias'" if optional else ""
        raise InputError(f"params must be a dict with keys 'weight' and 'delay'{extra} (like exe.params), got {got}")
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
    return out


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
    times: dict[str, Array] = {}
    neurons: dict[str, Array] = {}
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


def overflowed(rec: Recording, populations: Iterable[str]) -> list[str]:
    """Those of ``populations`` whose buffer overflowed in ``rec`` in some sample (concrete runs only)."""
    out = []
    for name in populations:
        flag = rec.overflow.get(name)
        if flag is not None and not _is_tracer(flag) and bool(np.any(np.asarray(flag))):
            out.append(name)
    return out


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


# --------------------------------------------------------------------------- compile and targets

TargetFactory = Callable[..., Executable]


def register_target(name: str, factory: TargetFactory) -> None:
    """Make ``snncomp.compile(net, target=name, **options)`` call ``factory(network, **options)``.

    Shorthand for ``snncomp.targets.register(Target(name, compile=factory))``; a target that also
    brings a pipeline, checks or commands registers a full :class:`snncomp.targets.Target`.
    """
    from .targets import Target, register

    register(Target(name=name, compile=factory))


def targets() -> list[str]:
    """Names of the targets known here (``snncomp.targets.names()``), usable or not."""
    from .targets import names

    return names()


def compile(network: Any, target: str = "jax", **options: Any) -> Executable:  # noqa: A001 - the contract's name
    """Compile ``network`` (an ``snncomp.ir.Network`` or a DSL ``snncomp.Network``) for ``target``.

    ``target="jax"`` options: ``t_max`` (window in seconds, overridable per
    run), ``dtype`` (default float32, or float64 when ``jax_enable_x64`` is on),
    ``spikes_per_neuron`` (buffer bound for populations with unbounded
    ``max_spikes``), ``strategy`` (``"auto"`` or ``"event-queue"``, which forces
    the event loop everywhere), ``adjoint`` (``"eventprop"``, the default, or
    ``"autodiff"``: plain JAX autodiff through layer-parallel stages, the reference).

    ``target="bss2-mock"`` places and routes the network on BrainScaleS-2 and runs it on the emulator
    (same ``params``/``run``/``apply``/``report``; ``run`` is differentiable, hardware in the loop).
    Options: ``t_max``, ``dtype``, ``spikes_per_neuron`` as above, ``mock`` (a ``MockConfig``:
    ``MockConfig.ideal()``, the default, or ``.realistic()``), ``chip_seed``, ``trial_seed``, ``chip``,
    ``step``, ``verify_each``, and any bss2 pass option by name (``signs``, ``saturate``, ``scale``,
    ``strategy``, ``speedup``, ...); see :func:`snncomp.targets.bss2.mock.compile_mock`.
    ``target="bss2"`` (the real chip) is not available here and says so.
    """
    from .dsl import Network as Builder

    if isinstance(network, Builder):
        network = network.build()
    if not isinstance(network, Network):
        raise TargetError(
            f"compile() takes an snncomp.ir.Network (or an snncomp.Network builder), got {type(network).__name__}"
        )
    from .targets import get

    plugin = get(target)
    if plugin.compile is None:
        raise TargetError(plugin.unavailable or f"target {target!r} cannot compile here")
    return plugin.compile(network, **options)


def __getattr__(name: str) -> Any:
    # Compatibility alias for one release: JaxExecutable moved to the jax target
    # (snncomp.targets.jax_event.JaxExecutable); the runtime holds contracts only.
    if name == "JaxExecutable":
        from importlib import import_module

        return import_module("snncomp.targets.jax_event._executable").JaxExecutable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
