"""Training-step throughput (forward + backward + optimizer update) of the jax target, CPU, and jaxsnn 0.3.0's.

Run: ``python bench/train_throughput.py`` (``--no-jaxsnn`` skips the comparison, ``--repeat`` sets the
number of timed steps).

Network and step: jaxsnn's EventProp Yin-Yang example (``yinyang_layered_event_prop.py``), exactly:
5 input channels each spiking 5 times at the same latency-coded time (25 input spikes, ``t_late``
2 tau_syn) -> 100 LIF -> 3 LIF, tau_mem 12 us, tau_syn 6 us, threshold 1, one spike per neuron
(jaxsnn: ``v_reset = -1000``; snncomp: ``max_spikes = 1``), ``t_max = 4 tau_syn``, batch 64; loss:
the example's ``mse_loss`` of first output spike times against target times (0.8 tau_syn for the
label, 1.2 tau_syn otherwise, silent = 2 tau_mem); optimizer: the example's
``chain(scale(1 / tau_syn), clip(0.01), adam(exponential_decay(0.005, 78, 0.99)))``. Both get the
same weights and the same batch, in one run of this script. jaxsnn's step is the example's
``jax.jit(partial(update, optimizer, loss_fn))``; it runs in a subprocess with another interpreter
(``--jaxsnn-python``, default ``$SNNCOMP_JAXSNN_PYTHON``, this one if it can import jaxsnn, else
``../venv-bench/bin/python``), as in ``bench/sim_throughput.py``; snncomp never imports jaxsnn.

snncomp's step gets the batch as jit arguments, like ``snncomp.train.fit`` (so the program sorts the
input spikes itself); "inputs constant" closes over the batch instead (validated and sorted once on
the host), the best case. Printed: median seconds of ``--repeat`` steps after the first call (the
first call, tracing and XLA compilation included, is reported separately), the forward pass alone
(the jitted loss value), and the gradients' agreement with jaxsnn's at the initial weights.
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


def make_problem(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights, one batch of input spikes (sorted by time) and target times, shared by both simulators."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(3.0 / 5, 1.6 / 5, (5, 100)).astype(np.float32)
    w2 = rng.normal(0.5, 0.8, (100, 3)).astype(np.float32)
    times = np.repeat(_yinyang_points(batch, seed + 1) * T_LATE, 5, axis=1).astype(np.float32)
    neurons = np.repeat(np.arange(5)[None, :], batch, axis=0).repeat(5, axis=1).astype(np.int32)
    order = np.argsort(times, axis=1, kind="stable")
    labels = rng.integers(0, 3, batch)
    targets = np.where(np.arange(3)[None, :] == labels[:, None], TARGET_CORRECT, TARGET_WRONG).astype(np.float32)
    return {
        "w1": w1,
        "w2": w2,
        "times": np.take_along_axis(times, order, axis=1),
        "neurons": np.take_along_axis(neurons, order, axis=1),
        "targets": targets,
    }


def example_optimizer() -> Any:
    import optax

    schedule = optax.exponential_decay(LR, STEPS_PER_EPOCH, LR_DECAY)
    return optax.chain(optax.scale(1.0 / TAU_SYN), optax.clip(0.01), optax.adam(schedule))


def _time_calls(call: Any, repeat: int) -> tuple[float, float]:
    """(first call in s, median of ``repeat`` later calls in s); ``call`` blocks until its result is ready."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    return first, _median_time(call, repeat)


# --------------------------------------------------------------------------- jaxsnn worker


def _jaxsnn_worker(data_path: str, out_path: str, repeat: int) -> None:
    """Runs inside the jaxsnn interpreter: the example's jitted ``update`` (forward, EventProp, optimizer)."""
    import jax
    import jax.numpy as jnp
    from jaxsnn.event.loss import mse_loss
    from jaxsnn.event.modules import LIF, LIFParameters, Linear, Source
    from jaxsnn.event.topology import Topology
    from jaxsnn.event.training import update
    from jaxsnn.event.types import OptState, Spike
    from jaxsnn.examples.event.utils import loss_wrapper

    data = np.load(data_path)
    lif = LIFParameters(v_reset=-1000.0, v_th=1.0, tau_syn=TAU_SYN, tau_mem=TAU_MEM)
    topo = Topology(t_max=T_MAX, backprop_method="eventprop")
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
    init_fn, apply_fn = topo.done()
    weights = init_fn(jax.random.PRNGKey(0))
    weights["syn1"] = jnp.asarray(data["w1"])
    weights["syn2"] = jnp.asarray(data["w2"])
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
    optimizer = example_optimizer()
    loss_fn = partial(loss_wrapper, apply_fn, mse_loss, TAU_MEM, "lif2", 3)
    update_fn = jax.jit(partial(update, optimizer, loss_fn))
    state = OptState(optimizer.init(weights), weights, jax.random.PRNGKey(1))
    t0 = time.perf_counter()
    _, (value, grad) = jax.block_until_ready(update_fn(state, batch))  # gradients at the initial weights
    compile_s = time.perf_counter() - t0

    def step() -> None:
        nonlocal state
        state, _ = update_fn(state, batch)
        jax.block_until_ready(state.params)

    step_s = _median_time(step, repeat)
    forward = jax.jit(lambda w: loss_fn(w, batch)[0])
    jax.block_until_ready(forward(weights))
    forward_s = _median_time(lambda: jax.block_until_ready(forward(weights)), repeat)
    result = {
        "jax": jax.__version__,
        "compile_s": compile_s,
        "step_s": step_s,
        "forward_s": forward_s,
        "loss": float(value[0]),
        "grad_w1": np.asarray(grad["syn1"]).tolist(),
        "grad_w2": np.asarray(grad["syn2"]).tolist(),
    }
    Path(out_path).write_text(json.dumps(result))


def _jaxsnn_python(explicit: str | None) -> str:
    if explicit:
        return explicit
    if importlib.util.find_spec("jaxsnn") is not None:  # installed here (e.g. the `bench` extra)
        return sys.executable
    return str(Path(__file__).resolve().parents[2] / "venv-bench" / "bin" / "python")


def run_jaxsnn(problem: dict[str, np.ndarray], python: str, repeat: int) -> dict[str, Any]:
    """jaxsnn's training step on ``problem`` in a subprocess with ``python``; raises if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(data, **problem)
        cmd = [python, __file__, "--repeat", str(repeat), "--jaxsnn-worker", str(data), str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"the jaxsnn worker failed ({python}):\n{res.stderr[-3000:]}")
        return json.loads(out.read_text())


# --------------------------------------------------------------------------- snncomp side


def snncomp_steps(problem: dict[str, np.ndarray], adjoint: str, repeat: int) -> dict[str, Any]:
    """Times snncomp's training step (batch as arguments, and closed over) and forward; initial gradients."""
    import jax
    import jax.numpy as jnp
    import optax

    import snncomp
    from snncomp import losses

    net = snncomp.Network("jaxsnn_yinyang")
    x = net.input("inp", 5)
    h = net.lif("lif1", 100, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=1.0, max_spikes=1)
    o = net.lif("lif2", 3, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=1.0, max_spikes=1)
    net.connect(x, h, weight=problem["w1"])
    net.connect(h, o, weight=problem["w2"])
    exe = snncomp.compile(net.build(), target="jax", t_max=T_MAX, adjoint=adjoint)
    delays = exe.params["delay"]
    inputs = {"inp": snncomp.Spikes(times=jnp.asarray(problem["times"]), neurons=jnp.asarray(problem["neurons"]))}
    targets = jnp.asarray(problem["targets"])

    def loss(w: Any, inputs: Any, targets: Any) -> jax.Array:
        """jaxsnn's ``mse_loss`` (silent or late spikes count as 2 tau_mem), batch mean."""
        rec = exe.apply({"weight": w, "delay": delays}, inputs)
        t = jnp.minimum(losses.finite_times(rec.spikes["lif2"].to_first_spike_times(3), 2 * TAU_MEM), 2 * TAU_MEM)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

    opt = example_optimizer()

    def step(w: Any, s: Any, inputs: Any, targets: Any) -> tuple[Any, Any, jax.Array]:
        v, g = jax.value_and_grad(loss)(w, inputs, targets)
        u, s = opt.update(g, s, w)
        return optax.apply_updates(w, u), s, v

    w0 = exe.params["weight"]
    out: dict[str, Any] = {}
    for name, fn, args in (
        ("args", jax.jit(step), (inputs, targets)),
        ("const", jax.jit(lambda w, s: step(w, s, inputs, targets)), ()),
    ):
        state = (w0, opt.init(w0))

        def call(fn: Any = fn, args: tuple = args) -> None:
            nonlocal state
            w, s, v = fn(*state, *args)
            jax.block_until_ready(v)
            state = (w, s)

        out[f"compile_{name}_s"], out[f"step_{name}_s"] = _time_calls(call, repeat)
    forward = jax.jit(loss)
    _, out["forward_s"] = _time_calls(lambda: jax.block_until_ready(forward(w0, inputs, targets)), repeat)
    value, grad = jax.jit(jax.value_and_grad(loss))(w0, inputs, targets)
    out["loss"] = float(value)
    out["grad_w1"] = np.asarray(grad["inp->lif1"])
    out["grad_w2"] = np.asarray(grad["lif1->lif2"])
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
    a, b = np.ravel(a), np.ravel(b)
    rel = np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    return f"relative L2 difference {rel:.2e}, cosine {cos:.6f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed steps per measurement (median)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--no-jaxsnn", action="store_true", help="skip the jaxsnn comparison")
    parser.add_argument("--jaxsnn-python", default=os.environ.get("SNNCOMP_JAXSNN_PYTHON"))
    parser.add_argument("--jaxsnn-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jaxsnn_worker:
        _jaxsnn_worker(*args.jaxsnn_worker, args.repeat)
        return 0

    import jax

    import snncomp

    batch = args.batch
    print(f"snncomp {snncomp.__version__}, jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores")
    print(f"jaxsnn's EventProp Yin-Yang example (25 input spikes -> 100 -> 3), batch {batch}, median of {args.repeat}")
    problem = make_problem(batch)

    theirs: dict[str, Any] | None = None
    python = _jaxsnn_python(args.jaxsnn_python)
    if args.no_jaxsnn:
        print("jaxsnn comparison skipped (--no-jaxsnn)")
    elif not Path(python).exists():
        print(f"jaxsnn comparison skipped: no interpreter at {python} (make one with `python3 -m venv venv-bench &&")
        print("  venv-bench/bin/pip install jaxsnn==0.3.0`, or pass --jaxsnn-python / set SNNCOMP_JAXSNN_PYTHON)")
    else:
        theirs = run_jaxsnn(problem, python, args.repeat)

    def row(name: str, step_s: float, forward_s: float, first_s: float) -> None:
        print(
            f"{name:34s} {step_s * 1e3:8.2f} {batch / step_s:10,.0f} {forward_s * 1e3:8.2f} "
            f"{(step_s - forward_s) * 1e3:8.2f} {first_s:7.1f}"
        )

    print(f"\n{'training step':34s} {'ms/step':>8s} {'samples/s':>10s} {'fwd ms':>8s} {'rest ms':>8s} {'1st s':>7s}")
    ours = {}
    for adjoint in ("eventprop", "autodiff"):
        r = ours[adjoint] = snncomp_steps(problem, adjoint, args.repeat)
        row(f"snncomp {adjoint}", r["step_args_s"], r["forward_s"], r["compile_args_s"])
        row(f"snncomp {adjoint}, inputs constant", r["step_const_s"], r["forward_s"], r["compile_const_s"])
    ev = ours["eventprop"]
    print(f"eventprop vs autodiff gradients: {_agreement(ev['grad_w1'], ours['autodiff']['grad_w1'])} (w1)")
    if theirs is None:
        return 0
    row(f"jaxsnn 0.3.0 (jax {theirs['jax']})", theirs["step_s"], theirs["forward_s"], theirs["compile_s"])
    print(
        f"\nratio snncomp/jaxsnn (samples/s): EventProp {theirs['step_s'] / ev['step_args_s']:.1f}x "
        f"(inputs constant: {theirs['step_s'] / ev['step_const_s']:.1f}x); "
        f"autodiff {theirs['step_s'] / ours['autodiff']['step_args_s']:.1f}x; "
        f"forward alone {theirs['forward_s'] / ev['forward_s']:.1f}x"
    )
    print(f"loss at the initial weights: snncomp {ev['loss']:.6f}, jaxsnn {theirs['loss']:.6f}")
    for key in ("grad_w1", "grad_w2"):
        print(f"gradient {key[5:]} vs jaxsnn: {_agreement(ev[key], np.asarray(theirs[key]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
