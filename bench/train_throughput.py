"""Training-step throughput (forward + backward + optimizer update) of the jax target, CPU, and jaxsnn 0.3.0's.

Run: ``python bench/train_throughput.py`` (``--network layered|recurrent|both``, default both;
``--no-jaxsnn`` skips the comparison, ``--repeat`` sets the number of timed steps).

**Layered** (``--network layered``): jaxsnn's EventProp Yin-Yang example
(``yinyang_layered_event_prop.py``), exactly: 5 input channels each spiking 5 times at the same
latency-coded time (25 input spikes, ``t_late`` 2 tau_syn) -> 100 LIF -> 3 LIF, tau_mem 12 us,
tau_syn 6 us, threshold 1, one spike per neuron (jaxsnn: ``v_reset = -1000``; snncomp:
``max_spikes = 1``), ``t_max = 4 tau_syn``, batch 64; loss: the example's ``mse_loss`` of first output
spike times against target times (0.8 tau_syn for the label, 1.2 tau_syn otherwise, silent = 2
tau_mem); optimizer: the example's ``chain(scale(1 / tau_syn), clip(0.01), adam(exponential_decay(0.005,
78, 0.99)))``. Both get the same weights and the same batch, in one run of this script. jaxsnn's step
is the example's ``jax.jit(partial(update, optimizer, loss_fn))``; it runs in a subprocess with another
interpreter (``--jaxsnn-python``, default ``$SNNCOMP_JAXSNN_PYTHON``, this one if it can import jaxsnn,
else ``../venv-bench/bin/python``), as in ``bench/sim_throughput.py``; snncomp never imports jaxsnn.

snncomp's step gets the batch as jit arguments, like ``snncomp.train.fit`` (so the program sorts the
input spikes itself); "inputs constant" closes over the batch instead (validated and sorted once on
the host), the best case. "user loop" is what a user writes without the benchmark's care:
``jax.jit(jax.value_and_grad(loss))`` over ``exe.run(inputs, {"weight": w, "delay": ...})`` with the
batch as arguments, and the optax update (the same optimizer) called eagerly outside the jit
(``bench/user_loop_breakdown.py`` takes its cost apart).

Timing: after a first call of each step (tracing and XLA compilation included, reported separately),
``--rounds`` rounds, each of which times every step in turn (``--repeat`` calls, their median), jaxsnn's
too: its worker stays alive and measures on request while this process waits, so the machine's load
hits both sides alike, and every ratio is taken round by round (printed: the median over rounds and the
range). Also printed: the forward pass alone (the jitted loss value) and the gradients' agreement with
jaxsnn's at the initial weights.

**Recurrent** (``--network recurrent``): jaxsnn's recurrent EventProp Yin-Yang example
(``yinyang_recurrent_event_prop.py``) as it builds it: 5 inputs (x, y, 1-x, 1-y, bias at 0; one spike
each, ``spatio_temporal_encode`` with ``t_late = 2 tau_syn``, sorted) -> 100 LIF with a recurrent
100 x 100 projection (``syn3``, normal mean 0 std 0.1, no delay) -> 3 LIF; ``syn1`` normal(3.0, 1.6),
``syn2`` normal(0.5, 0.8); tau_mem 10 ms, tau_syn 5 ms, threshold 1, ``v_reset = -1000`` (one spike
per neuron), ``t_max = 4 tau_syn = 20 ms``; event buffers ``n_spikes_hidden = 50``,
``n_spikes_output = 53``; batch 64; targets 0.9 / 1.1 tau_syn; the example's ``mse_loss`` through
``loss_wrapper`` and its optimizer (as above with tau_syn 5 ms), ``jax.jit(partial(update, optimizer,
loss_fn))``. snncomp: the same network in the DSL (``max_spikes=1`` on both LIF populations, a
recurrent projection ``lif1 -> lif1`` with delay 0), the same weights and inputs, EventProp, a
weights-only step with the same optimizer and loss. jaxsnn's buffers hold *events*, not spikes: every
step of its hidden layer's scan records one event, an input delivery, a hidden spike or the recurrent
delivery of a hidden spike (two slots per hidden spike), and the scan stops at the buffer's end, so a
sample with more events than slots is silently cut short. The script reports how often that happens
(samples whose last hidden slot is used; hidden spikes jaxsnn recorded against snncomp's, whose
buffers hold every spike and flag an overflow), and runs jaxsnn a second time with buffers large
enough for every event of this batch (``5 + 2 x 100 + 1`` hidden, ``100 + 3 + 1`` output slots:
the last slot stays unused), the like-for-like comparison of the simulators. snncomp's exactness is
checked against its own float64 run (a subprocess with ``jax_enable_x64``).

Peer environment (``../venv-bench``), pinned as measured in ``bench/requirements-jaxsnn.txt``::

    python3 -m venv ../venv-bench && ../venv-bench/bin/pip install -r bench/requirements-jaxsnn.txt

(jaxsnn 0.3.0 with jax/jaxlib 0.10.2, the version of snncomp's venv, optax 0.2.8, tree-math 0.2.1, numpy
2.4.6; jaxsnn declares only ``jax>=0.4.13`` and also runs with jax/jaxlib 0.4.30 and ``numpy<2``.)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sim_throughput import TAU_MEM_JAXSNN as TAU_MEM
from sim_throughput import TAU_SYN_JAXSNN as TAU_SYN
from sim_throughput import _median_time, _yinyang_points

T_MAX = 4.0 * TAU_SYN
T_LATE = 2.0 * TAU_SYN
TARGET_CORRECT, TARGET_WRONG = 0.8 * TAU_SYN, 1.2 * TAU_SYN
LR, LR_DECAY, STEPS_PER_EPOCH = 0.005, 0.99, 4992 // 64  # the example's defaults

# The recurrent example's defaults (yinyang_recurrent_event_prop.py).
REC_TAU_MEM, REC_TAU_SYN = 1e-2, 5e-3
REC_T_MAX = 4.0 * REC_TAU_SYN
REC_T_LATE = 2.0 * REC_TAU_SYN
REC_TARGET_CORRECT, REC_TARGET_WRONG = 0.9 * REC_TAU_SYN, 1.1 * REC_TAU_SYN
REC_HIDDEN = 100
REC_SLOTS_HIDDEN, REC_SLOTS_OUTPUT = 50, 53  # n_spikes_hidden, n_spikes_output
# Buffers that hold every event of a sample: 5 input deliveries + (spike + recurrent delivery) per
# hidden neuron, and 100 deliveries + 3 spikes in the output layer; one slot more, so that the last
# slot stays unused when nothing was cut.
REC_EXACT_HIDDEN, REC_EXACT_OUTPUT = 5 + 2 * REC_HIDDEN + 1, REC_HIDDEN + 3 + 1

# snncomp edge keys of the weights, and jaxsnn's projection names for them.
EDGES = {"w1": ("inp->lif1", "syn1"), "w2": ("lif1->lif2", "syn2"), "w3": ("lif1->lif1", "syn3")}


def make_problem(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Layered example: weights, one batch of input spikes (sorted by time) and target times."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(3.0 / 5, 1.6 / 5, (5, 100)).astype(np.float32)
    w2 = rng.normal(0.5, 0.8, (100, 3)).astype(np.float32)
    times = np.repeat(_yinyang_points(batch, seed + 1) * T_LATE, 5, axis=1).astype(np.float32)
    neurons = np.repeat(np.arange(5)[None, :], batch, axis=0).repeat(5, axis=1).astype(np.int32)
    order = np.argsort(times, axis=1, kind="stable")
    labels = rng.integers(0, 3, batch)
    targets = np.where(np.arange(3)[None, :] == labels[:, None], TARGET_CORRECT, TARGET_WRONG).astype(np.float32)
    return {
        "kind": np.array("layered"),
        "w1": w1,
        "w2": w2,
        "times": np.take_along_axis(times, order, axis=1),
        "neurons": np.take_along_axis(neurons, order, axis=1),
        "targets": targets,
    }


def _yinyang_classes(xy: np.ndarray) -> np.ndarray:
    """jaxsnn's ``yinyang_dataset`` classes (0 yin, 1 yang, 2 dots; >= 10 outside the circle), in numpy."""
    r_big, r_small = 0.5, 0.1
    x, y = xy[:, 0], xy[:, 1]
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    yin = (d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big))
    yin |= (y > r_big) & (d_right > 0.5 * r_big)
    circles = (d_right < r_small) | (d_left < r_small)
    outside = np.hypot(x - r_big, y - r_big) >= r_big
    return circles * 2 + (~circles) * yin + outside * 10


def make_recurrent_problem(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Recurrent example: weights as its ``Linear`` modules draw them, one encoded Yin-Yang batch, targets."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(3.0, 1.6, (5, REC_HIDDEN)).astype(np.float32)
    w2 = rng.normal(0.5, 0.8, (REC_HIDDEN, 3)).astype(np.float32)
    w3 = rng.normal(0.0, 0.1, (REC_HIDDEN, REC_HIDDEN)).astype(np.float32)
    xy = rng.uniform(0.0, 1.0, (10 * batch + 100, 2))
    classes = _yinyang_classes(xy)
    keep = np.flatnonzero(classes < 3)[:batch]
    xy, labels = xy[keep], classes[keep]
    # yinyang_dataset(mirror=True, bias_spike=0.0), then spatio_temporal_encode(t_late, duplication=1):
    # one spike per channel at value * t_late, sorted by time.
    features = np.concatenate([xy, 1.0 - xy, np.zeros((batch, 1))], axis=1)
    order = np.argsort(features, axis=1, kind="stable")
    times = (np.take_along_axis(features, order, axis=1) * REC_T_LATE).astype(np.float32)
    targets = np.where(np.arange(3)[None, :] == labels[:, None], REC_TARGET_CORRECT, REC_TARGET_WRONG)
    return {
        "kind": np.array("recurrent"),
        "w1": w1,
        "w2": w2,
        "w3": w3,
        "times": times,
        "neurons": order.astype(np.int32),
        "targets": targets.astype(np.float32),
        "slots": np.array([REC_SLOTS_HIDDEN, REC_SLOTS_OUTPUT]),
    }


def _constants(kind: str) -> tuple[float, float, float]:
    """``(tau_mem, tau_syn, t_max)`` of the example ``kind``."""
    return (TAU_MEM, TAU_SYN, T_MAX) if kind == "layered" else (REC_TAU_MEM, REC_TAU_SYN, REC_T_MAX)


def example_optimizer(tau_syn: float = TAU_SYN) -> Any:
    import optax

    schedule = optax.exponential_decay(LR, STEPS_PER_EPOCH, LR_DECAY)
    return optax.chain(optax.scale(1.0 / tau_syn), optax.clip(0.01), optax.adam(schedule))


# --------------------------------------------------------------------------- jaxsnn worker


def _jaxsnn_worker(data_path: str) -> None:
    """Runs inside the jaxsnn interpreter: the example's jitted ``update`` (forward, EventProp, optimizer).

    Prints its results at the initial weights (one marked JSON line), then answers ``step N`` and
    ``forward N`` on stdin with the median seconds of ``N`` calls.
    """
    import jax
    import jax.numpy as jnp
    from jaxsnn.event.loss import mse_loss
    from jaxsnn.event.modules import LIF, LIFParameters, Linear, Source
    from jaxsnn.event.topology import Topology
    from jaxsnn.event.training import update
    from jaxsnn.event.types import OptState, Spike
    from jaxsnn.examples.event.utils import loss_wrapper

    data = np.load(data_path)
    kind = str(data["kind"])
    tau_mem, tau_syn, t_max = _constants(kind)
    lif = LIFParameters(v_reset=-1000.0, v_th=1.0, tau_syn=tau_syn, tau_mem=tau_mem)
    topo = Topology(t_max=t_max, backprop_method="eventprop")
    if kind == "layered":  # yinyang_layered_event_prop.py
        topo.add(
            {
                "inp": Source(5),
                "lif1": LIF(100, 100 + 25, lif),
                "lif2": LIF(3, 103, lif),
                "syn1": Linear(mean=3.0 / 5, std=1.6 / 5),
                "syn2": Linear(mean=0.5, std=0.8),
            }
        )
        topo.connect([("inp", "syn1"), ("syn1", "lif1"), ("lif1", "syn2"), ("syn2", "lif2")])
    else:  # yinyang_recurrent_event_prop.py
        n_hidden, n_output = (int(k) for k in data["slots"])
        topo.add(
            {
                "inp": Source(5),
                "lif1": LIF(REC_HIDDEN, n_hidden, lif),
                "lif2": LIF(3, n_output, lif),
                "syn1": Linear(mean=3.0, std=1.6, min_delay=0.0),
                "syn2": Linear(mean=0.5, std=0.8, min_delay=0.0),
                "syn3": Linear(mean=0.0, std=0.1, min_delay=0.0),
            }
        )
        topo.connect(
            [
                ("inp", "syn1"),
                ("syn1", "lif1"),
                ("lif1", "syn2"),
                ("syn2", "lif2"),
                ("lif1", "syn3"),
                ("syn3", "lif1"),
            ]
        )
    init_fn, apply_fn = topo.done()
    weights = init_fn(jax.random.PRNGKey(0))
    names = {syn: key for key, (_, syn) in EDGES.items() if key in data}
    for syn, key in names.items():
        weights[syn] = jnp.asarray(data[key])
    times = jnp.asarray(data["times"])
    inputs = {
        "inp": Spike(
            time=times,
            idx=jnp.asarray(data["neurons"]),
            current=jnp.zeros_like(times),
            layer_idx=jnp.zeros(times.shape, int),
            internal=jnp.ones(times.shape, bool),
        )
    }
    batch = (inputs, jnp.asarray(data["targets"]))
    optimizer = example_optimizer(tau_syn)
    loss_fn = partial(loss_wrapper, apply_fn, mse_loss, tau_mem, "lif2", 3)
    update_fn = jax.jit(partial(update, optimizer, loss_fn))
    state = OptState(optimizer.init(weights), weights, jax.random.PRNGKey(1))
    t0 = time.perf_counter()
    _, (value, grad) = jax.block_until_ready(update_fn(state, batch))  # gradients at the initial weights
    compile_s = time.perf_counter() - t0

    def step() -> None:
        nonlocal state
        state, _ = update_fn(state, batch)
        jax.block_until_ready(state.params)

    forward = jax.jit(lambda w: loss_fn(w, batch)[0])
    t0 = time.perf_counter()
    jax.block_until_ready(forward(weights))
    forward_first_s = time.perf_counter() - t0
    result: dict[str, Any] = {
        "jax": jax.__version__,
        "compile_s": compile_s,
        "forward_first_s": forward_first_s,
        "loss": float(value[0]),
        "first": np.asarray(value[1][0]).tolist(),
        **{f"grad_{key}": np.asarray(grad[syn]).tolist() for syn, key in names.items()},
    }
    if kind == "recurrent":
        # What the fixed buffers kept: every slot is one event (input delivery, hidden spike, or the
        # recurrent delivery of a hidden spike); idx == -1 marks a step without an event.
        events = jax.jit(apply_fn)(inputs, weights)
        for pop in ("lif1", "lif2"):
            ev = events[pop]
            idx, internal, layer = np.asarray(ev.idx), np.asarray(ev.internal), np.asarray(ev.layer_idx)
            real = idx >= 0
            result[pop] = {
                "slots": int(idx.shape[1]),
                "used": (idx != -1).sum(axis=1).tolist(),
                "last_used": (idx[:, -1] != -1).tolist(),
                "spikes": (real & internal).sum(axis=1).tolist(),
                "input_deliveries": (real & ~internal & (layer == 0)).sum(axis=1).tolist(),
            }
        ev = events["lif1"]
        idx, time_ = np.asarray(ev.idx), np.asarray(ev.time, np.float64)
        spike = (idx >= 0) & np.asarray(ev.internal)
        first = np.full((idx.shape[0], REC_HIDDEN + 1), np.inf)
        np.minimum.at(first, (np.arange(idx.shape[0])[:, None], np.where(spike, idx, REC_HIDDEN)), time_)
        result["hidden_first"] = first[:, :REC_HIDDEN].tolist()
    # Then serve timing requests, so that the parent can alternate them with its own measurements.
    calls = {"step": step, "forward": lambda: jax.block_until_ready(forward(weights))}
    print(_MARK + json.dumps(result), flush=True)
    for line in sys.stdin:
        what, n = line.split()
        print(_MARK + json.dumps(_median_time(calls[what], int(n))), flush=True)


def _jaxsnn_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    if importlib.util.find_spec("jaxsnn") is not None:  # installed here (e.g. the `bench` extra)
        return sys.executable
    return str(Path(__file__).resolve().parents[2] / "venv-bench" / "bin" / "python")


_MARK = "@@bench "


class JaxsnnPeer:
    """jaxsnn's step on ``problem`` in a subprocess with ``python``, kept alive to time on request.

    ``info``: its results at the initial weights; ``time(what, n)``: median seconds of ``n`` calls of
    ``"step"`` or ``"forward"``. While this process measures, the peer waits on its stdin, and the other
    way round, so the two never run at the same time.
    """

    def __init__(self, problem: dict[str, np.ndarray], python: str):
        self._tmp = tempfile.TemporaryDirectory()
        data = Path(self._tmp.name) / "data.npz"
        np.savez(data, **problem)
        self._err = open(Path(self._tmp.name) / "stderr.txt", "w+")  # noqa: SIM115 - closed in close()
        self._python = python
        self._proc = subprocess.Popen(
            [python, __file__, "--jaxsnn-worker", str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.info: dict[str, Any] = self._read()

    def _read(self) -> Any:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(_MARK):
                return json.loads(line[len(_MARK) :])
        self._err.seek(0)
        raise RuntimeError(f"the jaxsnn worker failed ({self._python}):\n{self._err.read()[-3000:]}")

    def time(self, what: str, n: int) -> float:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{what} {n}\n")
        self._proc.stdin.flush()
        return float(self._read())

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=60)
        self._err.close()
        self._tmp.cleanup()


def _float64(problem: dict[str, np.ndarray]) -> dict[str, Any]:
    """snncomp's float64 results on ``problem``, from a fresh interpreter with ``jax_enable_x64``."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, **problem)
        cmd = [sys.executable, __file__, "--float64-worker", str(data), str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"the float64 worker failed:\n{res.stderr[-3000:]}")
        return json.loads(out.read_text())


def _alternate(timers: dict[str, Any], rounds: int, calls: int) -> dict[str, list[float]]:
    """``rounds`` rounds, each timing every entry of ``timers`` (``fn(n)``: median s of ``n`` calls) in turn."""
    out: dict[str, list[float]] = {k: [] for k in timers}
    for _ in range(rounds):
        for name, fn in timers.items():
            out[name].append(fn(calls))
    return out


# --------------------------------------------------------------------------- snncomp side


def _compile(
    problem: dict[str, np.ndarray], adjoint: str = "eventprop", dtype: str | None = None, early_stop: bool = False
) -> Any:
    """The example's network in snncomp's DSL, compiled for the jax target."""
    import snncomp

    kind = str(problem["kind"])
    tau_mem, tau_syn, t_max = _constants(kind)
    net = snncomp.Network(f"jaxsnn_yinyang_{kind}")
    x = net.input("inp", 5)
    h = net.lif("lif1", problem["w1"].shape[1], tau_mem=tau_mem, tau_syn=tau_syn, v_threshold=1.0, max_spikes=1)
    o = net.lif("lif2", 3, tau_mem=tau_mem, tau_syn=tau_syn, v_threshold=1.0, max_spikes=1)
    net.connect(x, h, weight=problem["w1"])
    if "w3" in problem:
        net.connect(h, h, weight=problem["w3"], delay=0.0)
    net.connect(h, o, weight=problem["w2"])
    options: dict[str, Any] = {"dtype": dtype} if dtype else {}
    if early_stop:  # the loss reads only the outputs' first spikes
        options["early_stop"] = "lif2"
    return snncomp.compile(net.build(), target="jax", t_max=t_max, adjoint=adjoint, **options)


def _example_loss(exe: Any, tau_mem: float) -> Any:
    """jaxsnn's ``mse_loss`` (silent or late spikes count as 2 tau_mem), batch mean, through ``exe.apply``."""
    import jax.numpy as jnp

    from snncomp import losses

    delays = exe.params["delay"]

    def loss(w: Any, inputs: Any, targets: Any) -> Any:
        rec = exe.apply({"weight": w, "delay": delays}, inputs)
        t = jnp.minimum(losses.finite_times(rec.spikes["lif2"].to_first_spike_times(3), 2 * tau_mem), 2 * tau_mem)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / tau_mem), axis=-1))

    return loss


def _user_loss(exe: Any, tau_mem: float) -> Any:
    """The same loss as a user writes it: ``exe.run`` with a params dict, ``to_first_spike_times``, ``jnp.where``."""
    import jax.numpy as jnp

    def loss(weights: Any, inputs: Any, targets: Any) -> Any:
        rec = exe.run(inputs, {"weight": weights, "delay": exe.params["delay"]})
        t = rec.spikes["lif2"].to_first_spike_times(3)
        t = jnp.minimum(jnp.where(jnp.isfinite(t), t, 2 * tau_mem), 2 * tau_mem)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / tau_mem), axis=-1))

    return loss


def _inputs(problem: dict[str, np.ndarray], dtype: Any = None) -> tuple[dict, Any]:
    import jax.numpy as jnp

    import snncomp

    times = jnp.asarray(problem["times"], dtype)
    inputs = {"inp": snncomp.Spikes(times=times, neurons=jnp.asarray(problem["neurons"]))}
    return inputs, jnp.asarray(problem["targets"], dtype)


def snncomp_setup(
    problem: dict[str, np.ndarray], adjoint: str, user_loop: bool = False, early_stop: bool = False
) -> dict[str, Any]:
    """snncomp's steps on ``problem``, compiled and called once; results at the initial weights.

    ``timers``: ``{"args", "const", "user", "forward"}`` -> ``fn(n)``, the median seconds of ``n`` calls
    (the training step with the batch as arguments, closed over, the plain user loop, and the forward
    pass alone); ``first``: the first call of each (tracing and XLA compilation included).
    """
    import jax
    import optax

    tau_mem, tau_syn, _ = _constants(str(problem["kind"]))
    exe = _compile(problem, adjoint, early_stop=early_stop)
    inputs, targets = _inputs(problem)
    loss = _example_loss(exe, tau_mem)
    opt = example_optimizer(tau_syn)

    def step(w: Any, s: Any, inputs: Any, targets: Any) -> tuple[Any, Any, jax.Array]:
        v, g = jax.value_and_grad(loss)(w, inputs, targets)
        u, s = opt.update(g, s, w)
        return optax.apply_updates(w, u), s, v

    w0 = exe.params["weight"]
    calls: dict[str, Any] = {}
    for name, fn, args in (
        ("args", jax.jit(step), (inputs, targets)),
        ("const", jax.jit(lambda w, s: step(w, s, inputs, targets)), ()),
    ):
        state = {"w": w0, "s": opt.init(w0)}

        def call(fn: Any = fn, args: tuple = args, state: dict = state) -> None:
            state["w"], state["s"], v = fn(state["w"], state["s"], *args)
            jax.block_until_ready(v)

        calls[name] = call
    if user_loop:
        exe_user = _compile(problem, adjoint)  # its own executable: no trace shared with the steps above
        value_and_grad = jax.jit(jax.value_and_grad(_user_loss(exe_user, tau_mem)))
        user = {"w": w0, "s": opt.init(w0)}

        def user_step() -> None:
            v, g = value_and_grad(user["w"], inputs, targets)
            updates, user["s"] = opt.update(g, user["s"], user["w"])
            user["w"] = optax.apply_updates(user["w"], updates)
            jax.block_until_ready((user["w"], v))

        calls["user"] = user_step
    forward = jax.jit(loss)
    calls["forward"] = lambda: jax.block_until_ready(forward(w0, inputs, targets))
    out: dict[str, Any] = {"first": {}, "timers": {}}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        out["first"][name] = time.perf_counter() - t0
        out["timers"][name] = partial(_median_time, call)
    value, grad = jax.jit(jax.value_and_grad(loss))(w0, inputs, targets)
    out["loss"] = float(value)
    for key, (edge, _) in EDGES.items():
        if edge in grad:
            out[f"grad_{key}"] = np.asarray(grad[edge])
    rec = exe.run(inputs, on_overflow="flag")
    out["first_times"] = np.asarray(rec.spikes["lif2"].to_first_spike_times(3))
    out["hidden_first"] = np.asarray(rec.spikes["lif1"].to_first_spike_times(problem["w1"].shape[1]))
    out["counts"] = {k: np.asarray(v.count()) for k, v in rec.spikes.items()}
    out["overflow"] = {k: np.asarray(v) for k, v in rec.overflow.items()}
    return out


def _float64_worker(data_path: str, out_path: str) -> None:
    """Runs in a fresh interpreter with ``jax_enable_x64``: snncomp's float64 forward, loss and gradients."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    problem = dict(np.load(data_path))
    tau_mem, _, _ = _constants(str(problem["kind"]))
    exe = _compile(problem, dtype="float64")
    inputs, targets = _inputs(problem, jnp.float64)
    w = {k: jnp.asarray(v, jnp.float64) for k, v in exe.params["weight"].items()}
    value, grad = jax.jit(jax.value_and_grad(_example_loss(exe, tau_mem)))(w, inputs, targets)
    rec = exe.run(inputs)
    result = {
        "loss": float(value),
        "first": np.asarray(rec.spikes["lif2"].to_first_spike_times(3)).tolist(),
        "hidden_first": np.asarray(rec.spikes["lif1"].to_first_spike_times(problem["w1"].shape[1])).tolist(),
        "overflow": {k: np.asarray(v).tolist() for k, v in rec.overflow.items()},
        **{f"grad_{key}": np.asarray(grad[edge]).tolist() for key, (edge, _) in EDGES.items() if edge in grad},
    }
    Path(out_path).write_text(json.dumps(result))


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
    a, b = np.ravel(a), np.ravel(b)
    rel = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return f"relative L2 difference {rel:.2e}, cosine {cos:.6f}"


def _times_agreement(a: np.ndarray, b: np.ndarray) -> str:
    """How two ``[batch, n]`` first-spike-time arrays (``inf``: silent) agree."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = np.isfinite(a) == np.isfinite(b)
    both = np.isfinite(a) & np.isfinite(b)
    diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else float("nan")
    rows = float(np.mean(np.all(same, axis=1)))
    text = f"same neurons spike in {rows:.0%} of samples, max |dt| {diff:.2e} s where both spike"
    if not same.all():
        only = np.where(np.isfinite(a), a, b)[~same]
        text += f"; {only.size} spike(s) on one side only, at {', '.join(f'{t * 1e3:.3f}' for t in only[:4])} ms"
    return text


def _ms(xs: list[float]) -> str:
    med = float(np.median(xs))
    return f"{med * 1e3:8.2f} {min(xs) * 1e3:7.2f}-{max(xs) * 1e3:<7.2f}"


def _header() -> None:
    print(f"\n{'training step':44s} {'ms/step':>8s} {'range':^15s} {'samples/s':>10s} {'fwd ms':>8s} {'1st s':>6s}")


def _row(batch: int, name: str, step: list[float], forward: list[float], first_s: float) -> None:
    med = float(np.median(step))
    print(f"{name:44s} {_ms(step)} {batch / med:10,.0f} {float(np.median(forward)) * 1e3:8.2f} {first_s:6.1f}")


def _ratio(theirs: list[float], ours: list[float]) -> str:
    """jaxsnn's time over snncomp's, round by round (each round measured both): median and range."""
    r = np.asarray(theirs) / np.asarray(ours)
    return f"{np.median(r):.2f}x [{r.min():.2f}-{r.max():.2f}]"


def layered(batch: int, rounds: int, calls: int, python: str | None) -> None:
    """The layered example: snncomp EventProp, autodiff and the user loop against jaxsnn."""
    print(f"\n== jaxsnn's layered EventProp Yin-Yang example (25 input spikes -> 100 -> 3), batch {batch}")
    problem = make_problem(batch)
    peer = JaxsnnPeer(problem, python) if python else None
    try:
        ours = {a: snncomp_setup(problem, a, user_loop=a == "eventprop") for a in ("eventprop", "autodiff")}
        timers = {f"{a}:{k}": fn for a, r in ours.items() for k, fn in r["timers"].items()}
        if peer is not None:
            timers["jaxsnn:step"] = partial(peer.time, "step")
            timers["jaxsnn:forward"] = partial(peer.time, "forward")
        t = _alternate(timers, rounds, calls)
    finally:
        if peer is not None:
            peer.close()
    row = partial(_row, batch)
    _header()
    labels = {"args": "", "const": ", inputs constant", "user": ", user loop (eager optax)"}
    for a, r in ours.items():
        for k, label in labels.items():
            if k in r["timers"]:
                row(f"snncomp {a}{label}", t[f"{a}:{k}"], t[f"{a}:forward"], r["first"][k])
    ev, ad = ours["eventprop"], ours["autodiff"]
    if peer is not None:
        info = peer.info
        row(f"jaxsnn 0.3.0 (jax {info['jax']})", t["jaxsnn:step"], t["jaxsnn:forward"], info["compile_s"])
    print(f"eventprop vs autodiff gradients: {_agreement(ev['grad_w1'], ad['grad_w1'])} (w1)")
    if peer is None:
        return
    js = t["jaxsnn:step"]
    print("\nratio snncomp/jaxsnn (samples/s), per round:")
    print(f"  EventProp {_ratio(js, t['eventprop:args'])}, inputs constant {_ratio(js, t['eventprop:const'])}")
    print(f"  user loop {_ratio(js, t['eventprop:user'])}; autodiff {_ratio(js, t['autodiff:args'])}")
    print(f"  forward alone {_ratio(t['jaxsnn:forward'], t['eventprop:forward'])}")
    print(f"loss at the initial weights: snncomp {ev['loss']:.6f}, jaxsnn {info['loss']:.6f}")
    for key in ("grad_w1", "grad_w2"):
        print(f"gradient {key[5:]} vs jaxsnn: {_agreement(ev[key], np.asarray(info[key]))}")


def _spread(x: Any) -> str:
    x = np.asarray(x)
    return f"{x.mean():.1f} ({x.min()}-{x.max()})"


def recurrent(batch: int, rounds: int, calls: int, python: str | None) -> None:
    """The recurrent example: snncomp EventProp against jaxsnn with the example's and with exact buffers."""
    print(
        f"\n== jaxsnn's recurrent EventProp Yin-Yang example (5 inputs -> 100 LIF, recurrent 100x100 -> 3), "
        f"batch {batch}"
    )
    problem = make_recurrent_problem(batch)
    labels = {
        "example": f"buffers {REC_SLOTS_HIDDEN}/{REC_SLOTS_OUTPUT}, the example's",
        "exact": f"buffers {REC_EXACT_HIDDEN}/{REC_EXACT_OUTPUT}, all events",
    }
    peers: dict[str, JaxsnnPeer] = {}
    try:
        if python:
            peers["example"] = JaxsnnPeer(problem, python)
            exact = dict(problem, slots=np.array([REC_EXACT_HIDDEN, REC_EXACT_OUTPUT]))
            peers["exact"] = JaxsnnPeer(exact, python)
        ours = snncomp_setup(problem, "eventprop")
        stop = snncomp_setup(problem, "eventprop", early_stop=True)
        f64 = _float64(problem)
        timers = {f"snncomp:{k}": fn for k, fn in ours["timers"].items()}
        timers.update({f"stop:{k}": fn for k, fn in stop["timers"].items() if k in ("args", "forward")})
        for key, peer in peers.items():
            timers[f"{key}:step"] = partial(peer.time, "step")
            timers[f"{key}:forward"] = partial(peer.time, "forward")
        t = _alternate(timers, rounds, calls)
    finally:
        for peer in peers.values():
            peer.close()
    theirs = {key: peer.info for key, peer in peers.items()}
    row = partial(_row, batch)
    _header()
    row("snncomp eventprop", t["snncomp:args"], t["snncomp:forward"], ours["first"]["args"])
    row("snncomp eventprop, inputs constant", t["snncomp:const"], t["snncomp:forward"], ours["first"]["const"])
    row("snncomp eventprop, early_stop='lif2'", t["stop:args"], t["stop:forward"], stop["first"]["args"])
    for key, r in theirs.items():
        row(f"jaxsnn 0.3.0, {labels[key]}", t[f"{key}:step"], t[f"{key}:forward"], r["compile_s"])
    print("ratio snncomp/jaxsnn (samples/s), per round:")
    for key in theirs:
        print(
            f"  jaxsnn with {labels[key]}: step {_ratio(t[f'{key}:step'], t['snncomp:args'])}, "
            f"forward {_ratio(t[f'{key}:forward'], t['snncomp:forward'])}; with early_stop: step "
            f"{_ratio(t[f'{key}:step'], t['stop:args'])}, forward {_ratio(t[f'{key}:forward'], t['stop:forward'])}"
        )
    print(
        f"early_stop: output first spikes vs the full run: {_times_agreement(stop['first_times'], ours['first_times'])}"
        f"; hidden spikes simulated per sample "
        f"{_spread(stop['counts']['lif1'])} (full run {_spread(ours['counts']['lif1'])}); loss "
        f"{stop['loss']:.6f} vs {ours['loss']:.6f}"
    )

    hidden = ours["counts"]["lif1"]
    print(
        f"\nsnncomp: hidden spikes per sample {_spread(hidden)}, output spikes {_spread(ours['counts']['lif2'])}; "
        f"overflow flags: {', '.join(f'{k} {bool(np.any(v))}' for k, v in ours['overflow'].items())}"
    )
    for key, r in theirs.items():
        h, o = r["lif1"], r["lif2"]
        spikes = np.asarray(h["spikes"])
        print(
            f"jaxsnn, {labels[key]}: last hidden slot used in {np.sum(h['last_used'])}/{batch} samples "
            f"(output: {np.sum(o['last_used'])}/{batch}); hidden spikes recorded {_spread(spikes)}, "
            f"{_spread(hidden - spikes)} fewer than snncomp's; input spikes delivered "
            f"{_spread(h['input_deliveries'])} of 5; output spikes {_spread(o['spikes'])}"
        )
    print(f"\nsnncomp float32 vs its float64 run: hidden {_times_agreement(ours['hidden_first'], f64['hidden_first'])}")
    print(f"  output {_times_agreement(ours['first_times'], f64['first'])}")
    print(
        f"  loss {ours['loss']:.6f} vs {f64['loss']:.6f}; float64 overflow flags "
        f"{', '.join(f'{k} {bool(np.any(v))}' for k, v in f64['overflow'].items())}"
    )
    for key in ("grad_w1", "grad_w3", "grad_w2"):
        print(f"  gradient {key[5:]}: {_agreement(ours[key], np.asarray(f64[key]))}")
    for k, r in theirs.items():
        print(f"\nvs jaxsnn, {labels[k]}: loss snncomp {ours['loss']:.6f}, jaxsnn {r['loss']:.6f}")
        print(f"  hidden spikes: {_times_agreement(ours['hidden_first'], np.asarray(r['hidden_first']))}")
        print(f"  output first spikes: {_times_agreement(ours['first_times'], np.asarray(r['first']))}")
        for key in ("grad_w1", "grad_w3", "grad_w2"):
            print(f"  gradient {key[5:]} ({EDGES[key[5:]][1]}): {_agreement(ours[key], np.asarray(r[key]))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each times every step once, in turn")
    parser.add_argument("--repeat", type=int, default=10, help="calls per step and round (their median)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--network", choices=("layered", "recurrent", "both"), default="both")
    parser.add_argument("--no-jaxsnn", action="store_true", help="skip the jaxsnn comparison")
    parser.add_argument("--jaxsnn-python", default=os.environ.get("SNNCOMP_JAXSNN_PYTHON"))
    parser.add_argument("--jaxsnn-worker", metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--float64-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jaxsnn_worker:
        _jaxsnn_worker(args.jaxsnn_worker)
        return 0
    if args.float64_worker:
        _float64_worker(*args.float64_worker)
        return 0

    import jax

    import snncomp

    print(f"snncomp {snncomp.__version__}, jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores")
    print(
        f"per step: the median over {args.rounds} rounds of the median of {args.repeat} calls (range: the rounds' "
        "medians); each round times every step in turn, jaxsnn's included"
    )
    python: str | None = _jaxsnn_python(args.jaxsnn_python)
    if args.no_jaxsnn:
        print("jaxsnn comparison skipped (--no-jaxsnn)")
        python = None
    elif not Path(python).exists():
        print(f"jaxsnn comparison skipped: no interpreter at {python} (make one with `python3 -m venv ../venv-bench &&")
        print("  ../venv-bench/bin/pip install -r bench/requirements-jaxsnn.txt`, or pass --jaxsnn-python / set")
        print("  SNNCOMP_JAXSNN_PYTHON)")
        python = None
    if args.network in ("layered", "both"):
        layered(args.batch, args.rounds, args.repeat, python)
    if args.network in ("recurrent", "both"):
        recurrent(args.batch, args.rounds, args.repeat, python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
