"""The C kernels (``native/``), called from a jitted program on the CPU.

``pip install`` compiles them into a shared library next to this module (``setup.py``; no Python
headers, so a compiler is all it needs). Three kernels:

- the **event-queue loop** (``event_queue.c``): one sample at a time, each neuron's next crossing kept
  between events and recomputed only for the neurons an event changed; a ``jax.pure_callback`` hands it
  the whole batch, split over the CPU's cores. It covers the common event-queue stage: every population
  spiking (with a spike log), current-based LIF with ``tau_mem = 2 tau_syn`` (the quadratic crossing),
  one ``tau_mem``, ``tau_syn`` and ``t_refrac`` per population, no instantaneous synapses and no ``if``
  neurons (:func:`reason` says why not);
- the **layer-parallel sweep** (``layer.c``) and the **single-spike event-queue stage**
  (``recurrent.c``: an event-queue stage of populations whose neurons spike at most once, forward and
  closed-form EventProp backward), both XLA FFI custom calls (``ffi.c``; :func:`layer_reason`,
  :func:`rec_reason`). Their handlers split the batch over XLA's own thread pool (``SNNCOMP_FFI_POOL=0``:
  over threads of their own instead).

Anything else, another backend than the CPU, or ``SNNCOMP_NATIVE=0`` in the environment keeps the XLA
versions. Both compute the same spikes: float64 spike times agree to rounding
(``tests/test_native_queue.py``, ``test_native_layer.py``, ``test_native_recurrent.py``).
``SNNCOMP_NATIVE_THREADS=k`` caps the threads a batch is split over (default: the CPU count, at most 16).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.metadata
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array

from ...ir import SPIKING_KINDS
from ._solver import QuadraticSolver

__all__ = [
    "available",
    "layer_reason",
    "reason",
    "rec_grad",
    "rec_operands",
    "rec_reason",
    "run",
    "run_layer",
    "run_rec",
]

_I32 = ctypes.POINTER(ctypes.c_int32)
_I64 = ctypes.POINTER(ctypes.c_int64)
_F64 = ctypes.POINTER(ctypes.c_double)
_U8 = ctypes.POINTER(ctypes.c_uint8)


class _Config(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_int32),
        ("npop", ctypes.c_int32),
        ("nproj", ctypes.c_int32),
        ("n_ext", ctypes.c_int32),
        ("n_stop", ctypes.c_int32),
        ("log_total", ctypes.c_int32),
        ("limit", ctypes.c_int64),
        ("n_rows", ctypes.c_int32),
        ("int_rows", ctypes.c_int32),
        ("pop_off", _I32),
        ("pop_size", _I32),
        ("pop_buf", _I32),
        ("pop_log_off", _I32),
        ("proj_src", _I32),
        ("proj_tgt", _I32),
        ("proj_w_off", _I64),
        ("proj_row_off", _I32),
        ("max_spikes", _I32),
        ("stop", _U8),
    ]


_INPUTS = (
    ("ext_t", _F64),
    ("ext_row", _I32),
    ("matrix", _F64),
    ("proj_w", _F64),
    ("proj_d", _F64),
    ("tau_m", _F64),
    ("tau_s", _F64),
    ("t_ref", _F64),
    ("theta", _F64),
    ("u_reset", _F64),
    ("u_init", _F64),
    ("i_init", _F64),
    ("t_max", _F64),
)


class _Inputs(ctypes.Structure):
    _fields_ = [f for name, ptr in _INPUTS for f in ((name, ptr), (name + "_s", ctypes.c_int64))]


class _Outputs(ctypes.Structure):
    _fields_ = [("t", _F64), ("nb", _I32), ("cur", _F64), ("overflow", _U8)]


def _layout() -> int:
    return ctypes.sizeof(_Config) * 1000000 + ctypes.sizeof(_Inputs) * 1000 + ctypes.sizeof(_Outputs)


@functools.cache
def _library() -> ctypes.CDLL | None:
    here = os.path.dirname(os.path.abspath(__file__))
    found = glob.glob(os.path.join(here, "_event_queue*.so")) + glob.glob(os.path.join(here, "_event_queue*.pyd"))
    for path in sorted(found):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        layout = getattr(lib, "snncomp_event_queue_layout", None)
        if layout is None:
            continue
        layout.restype = ctypes.c_int64
        if layout() != _layout():  # built from another version of event_queue.c
            continue
        fn = lib.snncomp_event_queue
        fn.argtypes = [
            ctypes.POINTER(_Config),
            ctypes.POINTER(_Inputs),
            ctypes.POINTER(_Outputs),
            ctypes.c_int64,
            ctypes.c_int64,
        ]
        fn.restype = ctypes.c_int
        return lib
    return None


def available() -> bool:
    """Whether the compiled loop was found (it is built by ``pip install``)."""
    return _library() is not None


def reason(stage: Any) -> str | None:
    """Why ``stage`` (an ``EventQueueStage``) cannot run in C (None: it can)."""
    if os.environ.get("SNNCOMP_NATIVE", "1") == "0":
        return "SNNCOMP_NATIVE=0"
    if not available():
        return "the compiled event loop is missing or out of date (run pip install -e . again)"
    if jax.default_backend() != "cpu":
        return f"backend {jax.default_backend()} (the C loop runs on the CPU only)"
    for p in stage.populations:
        nrn = p.nrn
        if p.kind not in SPIKING_KINDS or p.buffer <= 0:
            return f"population {p.name!r} records no spikes"
        if p.kind != "lif" or not isinstance(p.solver, QuadraticSolver):
            return f"population {p.name!r} is not a LIF with tau_mem = 2 tau_syn"
        if nrn.has_jump or nrn.has_drift:
            return f"population {p.name!r} has instantaneous synapses or no leak"
        if any(getattr(nrn, f).shape[0] != 1 for f in ("tau_mem", "tau_syn", "t_refrac")):
            return f"population {p.name!r} has per-neuron time constants"
    return None


def _ptr(a: np.ndarray, kind: Any) -> Any:
    return a.ctypes.data_as(kind)


def _rows(a: np.ndarray, batch_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """``a`` ``[*lead, k]`` as ``[rows, k]``: one row shared by every sample, or one per sample."""
    lead = a.shape[:-1]
    if int(np.prod(lead)) == 1:
        return a.reshape(1, a.shape[-1]), False
    if lead != batch_shape:  # batched along some vmapped axes only: materialize the others
        a = np.broadcast_to(a, (*batch_shape, a.shape[-1]))
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1])), True


_POOL: list[ThreadPoolExecutor] = []


def _host_call(static: dict, per_sample: np.ndarray, shared: np.ndarray) -> np.ndarray:
    """The callback: both operands and the result are bytes (see :func:`run`)."""
    ft = static["dtype"]
    size, n_ext = ft.itemsize, static["n_ext"]
    per_sample, shared = np.asarray(per_sample), np.asarray(shared)
    batch_shape = np.broadcast_shapes(per_sample.shape[:-1], shared.shape[:-1])
    batch = int(np.prod(batch_shape))
    ext, ext_batched = _rows(per_sample, batch_shape)
    ext_t = np.ascontiguousarray(ext[:, : n_ext * size]).view(ft).astype(np.float64)
    ext_row = np.ascontiguousarray(ext[:, n_ext * size :]).view(np.int32)
    sh, sh_batched = _rows(shared, batch_shape)
    floats = np.ascontiguousarray(sh).view(ft).astype(np.float64)
    ins = _Inputs()
    ins.ext_t, ins.ext_t_s = _ptr(ext_t, _F64), n_ext if ext_batched else 0
    ins.ext_row, ins.ext_row_s = _ptr(ext_row, _I32), n_ext if ext_batched else 0
    base = floats.ctypes.data
    for name, offset, _length in static["shared_layout"]:
        setattr(ins, name, ctypes.cast(base + 8 * offset, _F64))
        setattr(ins, name + "_s", floats.shape[1] if sh_batched else 0)
    cfg = static["config"]  # its arrays stay alive in static["keep"]
    total, npop = static["log_total"], static["npop"]
    out_t = np.empty((batch, total), np.float64)
    out_nb = np.empty((batch, total), np.int32)
    out_cur = np.empty((batch, total), np.float64)
    out_of = np.empty((batch, npop), np.uint8)
    outs = _Outputs(_ptr(out_t, _F64), _ptr(out_nb, _I32), _ptr(out_cur, _F64), _ptr(out_of, _U8))
    fn = _library().snncomp_event_queue  # type: ignore[union-attr]
    workers = max(1, min(int(os.environ.get("SNNCOMP_NATIVE_THREADS", os.cpu_count() or 1)), batch, 16))
    if workers == 1:
        codes = [fn(ctypes.byref(cfg), ctypes.byref(ins), ctypes.byref(outs), 0, batch)]
    else:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="snncomp-queue"))
        edges = np.linspace(0, batch, workers + 1).astype(np.int64)
        jobs = [
            _POOL[0].submit(fn, ctypes.byref(cfg), ctypes.byref(ins), ctypes.byref(outs), int(a), int(b))
            for a, b in itertools.pairwise(edges)
        ]
        codes = [j.result() for j in jobs]
    if any(codes):
        raise MemoryError("the native event loop could not allocate its working memory")
    packed = np.concatenate(
        [out_t.astype(ft).view(np.uint8), out_nb.view(np.uint8), out_cur.astype(ft).view(np.uint8), out_of], axis=1
    )
    return packed.reshape((*batch_shape, packed.shape[1]))


def _static(stage: Any, n_ext: int, n_rows: int, dtype: Any) -> dict:
    """The stage's layout as the C structure (arrays kept alive alongside it)."""
    pops = list(stage.populations)
    index = {p.name: k for k, p in enumerate(pops)}
    off = np.array([stage.offsets[p.name] for p in pops], np.int32)
    size = np.array([p.size for p in pops], np.int32)
    bufs = np.array([p.buffer for p in pops], np.int32)
    log_off = np.concatenate([[0], np.cumsum(bufs)[:-1]]).astype(np.int32)
    src = np.array([index[e.source] for e in stage.internal], np.int32)
    tgt = np.array([index[e.target] for e in stage.internal], np.int32)
    w_sizes = [e.source_size * e.target_size for e in stage.internal]
    w_off = np.concatenate([[0], np.cumsum(w_sizes)[:-1]]).astype(np.int64) if w_sizes else np.zeros(0, np.int64)
    src_rows = [e.source_size for e in stage.internal]
    row_off = np.concatenate([[0], np.cumsum(src_rows)[:-1]]).astype(np.int32) if src_rows else np.zeros(0, np.int32)
    max_sp = np.concatenate([np.broadcast_to(np.asarray(p.nrn.max_spikes), (p.size,)) for p in pops]).astype(np.int32)
    stop = np.zeros(stage.n_total, np.uint8)
    for p in pops:
        if p.name in stage.stop_on:
            stop[stage.offsets[p.name] : stage.offsets[p.name] + p.size] = 1
    keep: list[np.ndarray] = [off, size, bufs, log_off, src, tgt, w_off, row_off, max_sp, stop]
    cfg = _Config(
        stage.n_total,
        len(pops),
        len(stage.internal),
        n_ext,
        int(stop.sum()),
        int(bufs.sum()),
        stage.max_iterations(n_ext),
        n_rows,
        int(sum(src_rows)),
        *(_ptr(a, k) for a, k in zip(keep, (_I32, _I32, _I32, _I32, _I32, _I32, _I64, _I32, _I32, _U8))),
    )
    return dict(
        config=cfg,
        keep=keep,
        n_ext=n_ext,
        log_total=int(bufs.sum()),
        npop=len(pops),
        log_off=[int(x) for x in log_off],
        bufs=[int(x) for x in bufs],
        dtype=np.dtype(dtype),
    )


def run(stage: Any, params: dict, ext_t: Array, ext_rows: Array, matrix: Array, t_max: Array) -> list[tuple]:
    """The stage's spike logs ``(times, neurons, current, overflow)`` per population, by the C loop.

    ``ext_t``/``ext_rows``/``matrix``: the external deliveries (``_events.incoming``), one sample.
    """
    from ._events import effective_weight

    nrn = stage.nrn
    dtype = nrn.tau_mem.dtype  # the program's float type (the C loop computes in float64 either way)
    pops = list(stage.populations)
    n = stage.n_total
    static = _static(stage, int(ext_t.shape[0]), int(matrix.shape[0]), dtype)
    proj_w = [effective_weight(e, params).reshape(-1) for e in stage.internal]
    proj_w_flat = jnp.concatenate(proj_w).astype(dtype) if proj_w else jnp.zeros((1,), dtype)
    proj_d = (
        jnp.stack([jnp.asarray(params["delay"][e.key]).reshape(()) for e in stage.internal]).astype(dtype)
        if stage.internal
        else jnp.zeros((1,), dtype)
    )

    def pop_scalar(field: str) -> Array:
        x = getattr(nrn, field)
        return jnp.stack([x[stage.offsets[p.name]] if x.shape[0] > 1 else x[0] for p in pops]).astype(dtype)

    def per_neuron(field: str) -> Array:
        return jnp.broadcast_to(getattr(nrn, field), (n,)).astype(dtype)

    shared_parts = dict(
        matrix=matrix.astype(dtype),
        proj_w=proj_w_flat,
        proj_d=proj_d,
        tau_m=pop_scalar("tau_mem"),
        tau_s=pop_scalar("tau_syn"),
        t_ref=pop_scalar("t_refrac"),
        theta=per_neuron("theta"),
        u_reset=per_neuron("u_reset"),
        u_init=per_neuron("u_init"),
        i_init=per_neuron("i_init"),
        t_max=jnp.reshape(t_max, (1,)).astype(dtype),
    )
    layout, offset = [], 0
    for name, x in shared_parts.items():
        layout.append((name, offset, int(x.size)))
        offset += int(x.size)
    static["shared_layout"] = layout
    # Two operands and one result, all bytes. Few: JAX's callback costs tens of microseconds per operand
    # and result. Bytes: XLA runs the callback on its own thread, which ``with jax.enable_x64(True)``
    # does not reach, and JAX would round float64 values to float32 there.
    per_sample = jnp.concatenate(
        [
            lax.bitcast_convert_type(ext_t.astype(dtype), jnp.uint8).reshape(-1),
            lax.bitcast_convert_type(ext_rows.astype(jnp.int32), jnp.uint8).reshape(-1),
        ]
    )
    shared = jnp.concatenate([x.reshape(-1) for x in shared_parts.values()])
    shared = lax.bitcast_convert_type(shared, jnp.uint8).reshape(-1)
    size = np.dtype(dtype).itemsize
    total, npop = static["log_total"], static["npop"]
    out = jax.pure_callback(
        functools.partial(_host_call, static),
        jax.ShapeDtypeStruct((total * (2 * size + 4) + npop,), jnp.uint8),
        per_sample,
        shared,
        vmap_method="expand_dims",
    )
    ts = lax.bitcast_convert_type(out[: total * size].reshape(total, size), dtype)
    nb = lax.bitcast_convert_type(out[total * size : total * (size + 4)].reshape(total, 4), jnp.int32)
    cur = lax.bitcast_convert_type(out[total * (size + 4) : total * (2 * size + 4)].reshape(total, size), dtype)
    of = out[total * (2 * size + 4) :] != 0
    logs = []
    for k in range(npop):
        lo, hi = static["log_off"][k], static["log_off"][k] + static["bufs"][k]
        logs.append((ts[lo:hi], nb[lo:hi], cur[lo:hi], of[k]))
    return logs


def _jaxlib_versions() -> tuple[str, str]:
    """(the jaxlib the FFI handlers were built against, the jaxlib running), or ("", ...) without handlers."""
    lib = _library()
    try:
        running = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        running = "unknown"
    if lib is None or not hasattr(lib, "snncomp_ffi_jaxlib"):
        return "", running
    lib.snncomp_ffi_jaxlib.restype = ctypes.c_char_p
    return lib.snncomp_ffi_jaxlib().decode(), running


@functools.cache
def _ffi_targets() -> bool:
    """Register the library's XLA FFI handlers with JAX (once); False where there are none or they do not fit."""
    lib = _library()
    ffi = getattr(jax, "ffi", None)
    built, running = _jaxlib_versions()
    if lib is None or ffi is None or not hasattr(lib, "snncomp_layer_ffi") or built != running:
        return False
    ffi.register_ffi_target("snncomp_layer", ffi.pycapsule(lib.snncomp_layer_ffi), platform="cpu")
    if hasattr(lib, "snncomp_rec_ffi"):
        ffi.register_ffi_target("snncomp_rec", ffi.pycapsule(lib.snncomp_rec_ffi), platform="cpu")
        ffi.register_ffi_target("snncomp_rec_grad", ffi.pycapsule(lib.snncomp_rec_grad_ffi), platform="cpu")
    return True


def _ffi_reason() -> str:
    built, running = _jaxlib_versions()
    if not built:
        return "the compiled kernels were built without XLA's FFI header (jaxlib's include directory)"
    if built != running:
        return (
            f"the compiled kernels were built for jaxlib {built}, not the running {running} "
            "(run pip install -e . again)"
        )
    return "jax.ffi is unavailable in this jax version"


def _kernel_reason() -> str | None:
    """Why no FFI kernel can run here (None: they can)."""
    if os.environ.get("SNNCOMP_NATIVE", "1") == "0":
        return "SNNCOMP_NATIVE=0"
    if not available():
        return "the compiled kernels are missing or out of date (run pip install -e . again)"
    if not _ffi_targets():
        return _ffi_reason()
    if jax.default_backend() != "cpu":
        return f"backend {jax.default_backend()} (the C kernels run on the CPU only)"
    return None


def layer_reason(pop: Any) -> str | None:
    """Why ``pop`` (a layer-parallel ``PopulationPlan``) cannot run in C (None: it can)."""
    if (why := _kernel_reason()) is not None:
        return why
    nrn = pop.nrn
    if pop.kind != "lif" or not isinstance(pop.solver, QuadraticSolver):
        return "not a LIF with tau_mem = 2 tau_syn"
    if nrn.has_jump or nrn.has_drift:
        return "instantaneous synapses or no leak"
    if nrn.tau_mem.shape[0] != 1 or nrn.tau_syn.shape[0] != 1:
        return "per-neuron time constants"
    return None


def _spike_kernel(
    target: str,
    nrn: Any,
    n: int,
    times: Array,
    rows: Array,
    matrix: Array,
    t_max: Array,
    presorted: bool,
    middle: tuple[Array, ...] = (),
    tail: tuple[Array, ...] = (),
) -> tuple[Array, Array, Array]:
    """Calls a first-spike kernel of ``ffi.c`` (``times [n], neurons [n], current [n]``). Operands: the
    deliveries, ``middle``, thresholds, initial states, constants (tau_mem, tau_syn, delta, t_max), flags
    (has_init, sort), ``tail``."""
    dtype = matrix.dtype

    def col(x: Array) -> Array:
        return jnp.broadcast_to(x, (n,)).astype(dtype)

    consts = jnp.stack([nrn.tau_mem[0], nrn.tau_syn[0], nrn.delta[0], t_max.astype(nrn.tau_mem.dtype)]).astype(dtype)
    call = jax.ffi.ffi_call(
        target,
        (
            jax.ShapeDtypeStruct((n,), dtype),
            jax.ShapeDtypeStruct((n,), jnp.int32),
            jax.ShapeDtypeStruct((n,), dtype),
        ),
        vmap_method="expand_dims",
    )
    out_t, out_nb, out_cur = call(
        times.astype(dtype),
        rows.astype(jnp.int32),
        matrix,
        *middle,
        col(nrn.theta),
        jnp.stack([col(nrn.u_init), col(nrn.i_init)]),
        consts,
        jnp.asarray([int(nrn.has_init), int(not presorted)], jnp.int32),
        *tail,
    )
    return out_t, out_nb, out_cur


def run_layer(
    pop: Any, nrn: Any, times: Array, rows: Array, matrix: Array, t_max: Array, presorted: bool = True
) -> tuple[Array, Array, Array]:
    """One sample's first spikes of a layer-parallel population, sorted: ``(times, neurons, current)``.

    ``times``/``rows``/``matrix``: the population's deliveries (``_events.incoming``), in time order
    if ``presorted`` (else the kernel sorts them, stably); ``nrn`` its constants (biased). An XLA
    custom call (``native/ffi.c``, ``native/layer.c``).
    """
    if not _ffi_targets():
        raise RuntimeError(f"the C layer kernel is unavailable: {layer_reason(pop)}")
    return _spike_kernel("snncomp_layer", nrn, pop.size, times, rows, matrix, t_max, presorted)


def rec_reason(stage: Any) -> str | None:
    """Why ``stage`` (an ``EventQueueStage``) is not run by the single-spike kernel (None: it is).

    It covers stages of LIF populations with ``tau_mem = 2 tau_syn`` whose neurons spike at most once,
    one ``tau_mem`` and ``tau_syn`` for the whole stage, and no instantaneous synapses
    (``native/recurrent.c``); an early stop included.
    """
    if (why := _kernel_reason()) is not None:
        return why
    lib = _library()
    if lib is None or not hasattr(lib, "snncomp_rec_ffi"):
        return "the compiled kernels predate the single-spike kernel (run pip install -e . again)"
    for p in stage.populations:
        if p.kind != "lif" or not isinstance(p.solver, QuadraticSolver):
            return f"population {p.name!r} is not a LIF with tau_mem = 2 tau_syn"
        if p.buffer != p.size:
            return f"population {p.name!r} logs {p.buffer} spikes, not one per neuron"
    nrn = stage.nrn
    if nrn.has_jump or nrn.has_drift:
        return "instantaneous synapses or no leak"
    if nrn.tau_mem.shape[0] != 1 or nrn.tau_syn.shape[0] != 1:
        return "more than one tau_mem or tau_syn in the stage"
    try:
        once = bool(np.all(np.asarray(nrn.max_spikes) == 1)) and bool(np.all(np.asarray(nrn.spiking)))
    except jax.errors.TracerArrayConversionError:
        once = False
    if not once:
        return "neurons that may spike more than once"
    return None


def rec_operands(stage: Any, params: dict, dtype: Any) -> tuple[Array, Array]:
    """The internal projections as rows over the whole stage ``[P, n, n]``, and their delays ``[P]``."""
    from ._events import effective_weight

    n = stage.n_total
    if not stage.internal:  # a feed-forward population forced into an event-queue stage
        return jnp.zeros((0, n, n), dtype), jnp.zeros((0,), dtype)
    rows = []
    for e in stage.internal:
        w = effective_weight(e, params).astype(dtype)
        so, to = stage.offsets[e.source], stage.offsets[e.target]
        if e.source_size == n and e.target_size == n:
            rows.append(w)
        else:
            rows.append(jnp.zeros((n, n), dtype).at[so : so + e.source_size, to : to + e.target_size].set(w))
    drec = jnp.stack([jnp.asarray(params["delay"][e.key]).reshape(()).astype(dtype) for e in stage.internal])
    return jnp.stack(rows), drec


def _rec_layout(stage: Any) -> Array:
    """The populations' offsets, then a flag per neuron whose first spike ends the run (``stop_on``)."""
    pops = list(stage.populations)
    offsets = [stage.offsets[p.name] for p in pops] + [stage.n_total]
    stop = np.zeros(stage.n_total, np.int32)
    for p in pops:
        if p.name in stage.stop_on:
            stop[stage.offsets[p.name] : stage.offsets[p.name] + p.size] = 1
    return jnp.asarray(np.concatenate([np.asarray(offsets, np.int32), stop]))


def run_rec(
    stage: Any, params: dict, times: Array, rows: Array, matrix: Array, t_max: Array, presorted: bool = True
) -> tuple[Array, Array, Array]:
    """One sample's spikes of a single-spike event-queue stage: ``(times, neurons, current)`` ``[n]``, each
    population's spikes in time order at its offset (local indices). ``times``/``rows``/``matrix``: the
    external deliveries (``_events.incoming``), in time order if ``presorted``. An XLA custom call
    (``native/ffi.c``, ``native/recurrent.c``)."""
    if not _ffi_targets():
        raise RuntimeError(f"the C recurrent kernel is unavailable: {rec_reason(stage)}")
    wrec, drec = rec_operands(stage, params, matrix.dtype)
    return _spike_kernel(
        "snncomp_rec",
        stage.nrn,
        stage.n_total,
        times,
        rows,
        matrix,
        t_max,
        presorted,
        (wrec, drec),
        (_rec_layout(stage),),
    )


def rec_grad(
    stage: Any,
    params: dict,
    spikes: tuple[Array, Array, Array],
    ct: Array,
    times: Array,
    rows: Array,
    matrix: Array,
    t_max: Array,
) -> tuple[Array, Array, Array, Array, Array]:
    """EventProp backward of :func:`run_rec` from its spikes ``(times, neurons, current)`` (laid out as it
    returns them) and their cotangents ``ct``: ``(lam [n], d matrix, d times, d internal rows [P, n, n],
    d internal delays [P])``, ``lam`` being the membrane adjoint just before each neuron's spike (0 without
    one)."""
    from ._eventprop_common import guarded_slope

    nrn = stage.nrn
    dtype = matrix.dtype
    n = stage.n_total
    wrec, drec = rec_operands(stage, params, dtype)
    sp_t, sp_nb, sp_cur = spikes
    theta = jnp.broadcast_to(nrn.theta, (n,)).astype(dtype)
    # guarded_slope's floor per neuron (in the program's precision), for the kernel to apply.
    floor = guarded_slope(jnp.zeros((n,), dtype), nrn)
    consts = jnp.stack([nrn.tau_mem[0].astype(dtype), jnp.zeros((), dtype), t_max.astype(dtype)])
    call = jax.ffi.ffi_call(
        "snncomp_rec_grad",
        (
            jax.ShapeDtypeStruct((n,), dtype),
            jax.ShapeDtypeStruct(matrix.shape, dtype),
            jax.ShapeDtypeStruct(times.shape, dtype),
            jax.ShapeDtypeStruct(wrec.shape, dtype),
            jax.ShapeDtypeStruct(drec.shape, dtype),
        ),
        vmap_method="expand_dims",
    )
    lam, d_matrix, d_times, d_wrec, d_drec = call(
        sp_t.astype(dtype),
        sp_nb.astype(jnp.int32),
        sp_cur.astype(dtype),
        ct.astype(dtype),
        times.astype(dtype),
        rows.astype(jnp.int32),
        matrix,
        wrec,
        drec,
        jnp.stack([theta, jnp.broadcast_to(floor, (n,)).astype(dtype)]),
        consts,
        _rec_layout(stage),
    )
    return lam, d_matrix, d_times, d_wrec, d_drec
