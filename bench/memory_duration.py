"""Peak memory of one training step against the simulated duration: EventProp vs time-stepped BPTT, CPU.

Run: ``python bench/memory_duration.py`` (``--scales 1 10 100``, ``--dt``, ``--batch``).

The network, batch, loss and optimizer are those of ``bench/train_throughput.py`` (jaxsnn's EventProp
Yin-Yang example: 25 input spikes -> 100 LIF -> 3 LIF, tau_mem 12 us, tau_syn 6 us, one spike per
neuron, batch 64). The simulated window grows from ``t_max = 4 tau_syn = 24 us`` to 10x and 100x with
the *same* input spikes (all in the first 12 us), so every method sees the same events. Measured, each
configuration in a fresh subprocess:

- ``snncomp eventprop``: the jitted step (forward, EventProp backward, optimizer) of the jax target;
- ``snncomp autodiff``: the same with ``adjoint="autodiff"`` (reverse-mode AD through the closed-form,
  event-based forward: also independent of the duration);
- ``BPTT, dt grid``: a time-stepped reference written here in plain JAX: the same model (CubaLIF,
  exact exponential propagation over each step of ``--dt``, input spikes binned to the grid), a
  Heaviside spike with a fast-sigmoid surrogate derivative, one spike per neuron, first output spike
  time read from the grid, ``jax.grad`` through ``lax.scan`` over every step.

Two numbers per configuration: XLA's compiled memory analysis (``temp``: buffers live inside the
step, the residuals of the backward pass among them; ``args + outputs``), and the resident-set peak
while the step executes (Linux: the peak is reset through ``/proc/self/clear_refs`` after a warm-up
call, then ``VmHWM`` minus ``VmRSS`` before the call; elsewhere ``ru_maxrss`` of the whole process
minus its value after the imports, which includes compilation).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from train_throughput import T_MAX, TAU_MEM, TAU_SYN, example_optimizer, make_problem

THETA = 1.0
DT = 0.25e-6  # tau_syn / 24
SURROGATE_BETA = 10.0  # fast sigmoid 1 / (1 + beta |u - theta| / theta)^2


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


# --------------------------------------------------------------------------- the steps


def _snncomp_step(problem: dict[str, np.ndarray], adjoint: str, t_max: float) -> tuple[Any, tuple, Any]:
    """(step, args, count): the training step of the jax target over ``[0, t_max)``."""
    import jax
    import jax.numpy as jnp
    import optax

    import snncomp
    from snncomp import losses

    net = snncomp.Network("jaxsnn_yinyang")
    x = net.input("inp", 5)
    h = net.lif("lif1", 100, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=THETA, max_spikes=1)
    o = net.lif("lif2", 3, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=THETA, max_spikes=1)
    net.connect(x, h, weight=problem["w1"])
    net.connect(h, o, weight=problem["w2"])
    exe = snncomp.compile(net.build(), target="jax", t_max=t_max, adjoint=adjoint)
    delays = exe.params["delay"]
    opt = example_optimizer()

    def loss(w: Any, inputs: Any, targets: Any) -> jax.Array:
        rec = exe.apply({"weight": w, "delay": delays}, inputs)
        t = jnp.minimum(losses.finite_times(rec.spikes["lif2"].to_first_spike_times(3), 2 * TAU_MEM), 2 * TAU_MEM)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

    def step(w: Any, s: Any, inputs: Any, targets: Any) -> tuple[Any, Any, jax.Array]:
        v, g = jax.value_and_grad(loss)(w, inputs, targets)
        u, s = opt.update(g, s, w)
        return optax.apply_updates(w, u), s, v

    w = exe.params["weight"]
    inputs = {"inp": snncomp.Spikes(times=jnp.asarray(problem["times"]), neurons=jnp.asarray(problem["neurons"]))}

    def count() -> dict[str, float]:
        rec = exe.run(inputs)
        return {k: float(np.mean(np.asarray(v.count()))) for k, v in rec.spikes.items()}

    return step, (w, opt.init(w), inputs, jnp.asarray(problem["targets"])), count


def _bptt_step(problem: dict[str, np.ndarray], t_max: float, dt: float) -> tuple[Any, tuple, Any]:
    """(step, args, count): time-stepped BPTT of the same network over ``ceil(t_max / dt)`` steps."""
    import jax
    import jax.numpy as jnp
    import optax

    n_steps = int(np.ceil(t_max / dt - 1e-9))
    a_syn, a_mem = np.exp(-dt / TAU_SYN), np.exp(-dt / TAU_MEM)
    delta = 1.0 / TAU_MEM - 1.0 / TAU_SYN
    c_in = a_mem * np.expm1(dt * delta) / delta / TAU_MEM  # u gain of a current present at the step's start

    @jax.custom_jvp
    def spike(x: jax.Array) -> jax.Array:
        return (x >= 0).astype(x.dtype)

    @spike.defjvp
    def _spike_jvp(primals: tuple, tangents: tuple) -> tuple:
        (x,), (dx,) = primals, tangents
        return spike(x), dx / (1.0 + SURROGATE_BETA * jnp.abs(x) / THETA) ** 2

    def simulate(w: dict, inputs: tuple) -> tuple[jax.Array, jax.Array, jax.Array]:
        times, onehot = inputs  # [B, E], [B, E, 5]
        b = times.shape[0]
        w1, w2 = w["inp->lif1"], w["lif1->lif2"]

        def lif(u: jax.Array, i: jax.Array, z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
            u = a_mem * u + c_in * i  # exact over one step for the current held at its start
            i = a_syn * i
            s = spike(u - THETA) * (1.0 - z)  # one spike per neuron
            return u * (1.0 - s), i, z + s, s

        def body(carry: tuple, k: jax.Array) -> tuple[tuple, None]:
            u1, i1, z1, u2, i2, z2, t_out = carry
            t0 = k * dt
            arrived = ((times >= t0) & (times < t0 + dt)).astype(times.dtype)  # input spikes in this step
            i1 = i1 + jnp.einsum("be,bec->bc", arrived, onehot) @ w1
            u1, i1, z1, s1 = lif(u1, i1, z1)
            i2 = i2 + s1 @ w2
            u2, i2, z2, _ = lif(u2, i2, z2)
            t_out = t_out + dt * (1.0 - z2)  # = the first spike time on the grid (t_max if none)
            return (u1, i1, z1, u2, i2, z2, t_out), None

        zeros = jnp.zeros((b, 100)), jnp.zeros((b, 3))
        carry = (zeros[0], zeros[0], zeros[0], zeros[1], zeros[1], zeros[1], zeros[1])
        carry, _ = jax.lax.scan(body, carry, jnp.arange(n_steps))
        return carry[6], carry[2], carry[5]

    def loss(w: dict, inputs: tuple, targets: jax.Array) -> jax.Array:
        t = jnp.minimum(simulate(w, inputs)[0], 2 * TAU_MEM)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

    opt = example_optimizer()

    def step(w: Any, s: Any, inputs: Any, targets: Any) -> tuple[Any, Any, jax.Array]:
        v, g = jax.value_and_grad(loss)(w, inputs, targets)
        u, s = opt.update(g, s, w)
        return optax.apply_updates(w, u), s, v

    w = {"inp->lif1": jnp.asarray(problem["w1"]), "lif1->lif2": jnp.asarray(problem["w2"])}
    inputs = (jnp.asarray(problem["times"]), jax.nn.one_hot(problem["neurons"], 5))

    def count() -> dict[str, float]:
        _, z1, z2 = jax.jit(simulate)(w, inputs)
        return {"lif1": float(jnp.mean(jnp.sum(z1, -1))), "lif2": float(jnp.mean(jnp.sum(z2, -1))), "steps": n_steps}

    return step, (w, opt.init(w), inputs, jnp.asarray(problem["targets"])), count


def _worker(method: str, scale: float, batch: int, dt: float) -> dict[str, Any]:
    import jax

    base_kb = _maxrss_kb()
    problem = make_problem(batch)
    t_max = T_MAX * scale
    if method == "bptt":
        step, args, count = _bptt_step(problem, t_max, dt)
    else:
        step, args, count = _snncomp_step(problem, method, t_max)
    t0 = time.perf_counter()
    compiled = jax.jit(step).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    jax.block_until_ready(compiled(*args))  # warm-up
    gc.collect()
    run_kb = None
    if _reset_peak_rss() and (before := _status_kb("VmRSS")) is not None:
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        step_s = time.perf_counter() - t0
        hwm = _status_kb("VmHWM")
        run_kb = None if hwm is None else hwm - before
    else:
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        step_s = time.perf_counter() - t0
    return {
        "temp": int(ma.temp_size_in_bytes),
        "io": int(ma.argument_size_in_bytes + ma.output_size_in_bytes),
        "run_kb": run_kb,
        "process_kb": _maxrss_kb() - base_kb,
        "compile_s": compile_s,
        "step_s": step_s,
        "events": count(),
    }


# --------------------------------------------------------------------------- driver


def _mib(n_bytes: float | None) -> str:
    return "n/a" if n_bytes is None else f"{n_bytes / 2**20:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="t_max multiples")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dt", type=float, default=DT, help="step of the time-stepped reference (s)")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker[0], float(args.worker[1]), args.batch, args.dt)))
        return 0

    print(
        f"training step, 25 input spikes -> 100 -> 3, batch {args.batch}; t_max = {T_MAX * 1e6:g} us x scale; "
        f"BPTT dt = {args.dt * 1e6:g} us; each row a fresh process"
    )
    head = f"{'method':18s} {'scale':>5s} {'t_max':>9s} {'steps':>6s} {'spikes/sample':>14s} "
    head += f"{'XLA temp MiB':>12s} {'args+out MiB':>12s} {'RSS step MiB':>12s} {'RSS proc MiB':>12s} "
    head += f"{'1 step ms':>9s} {'compile s':>9s}"
    print(head)
    methods = (("eventprop", "snncomp eventprop"), ("autodiff", "snncomp autodiff"), ("bptt", "BPTT, dt grid"))
    for method, label in methods:
        for scale in args.scales:
            cmd = [sys.executable, __file__, "--batch", str(args.batch), "--dt", repr(args.dt)]
            cmd += ["--worker", method, repr(scale)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                print(f"{label:18s} {scale:5g}  failed:\n{res.stderr[-2000:]}")
                return 1
            r = json.loads(res.stdout.strip().splitlines()[-1])
            ev = r["events"]
            steps = str(ev.pop("steps")) if "steps" in ev else "-"
            spikes = f"{ev.get('lif1', 0):.1f} + {ev.get('lif2', 0):.1f}"
            run = None if r["run_kb"] is None else r["run_kb"] * 1024
            print(
                f"{label:18s} {scale:5g} {T_MAX * scale * 1e6:7.0f}us {steps:>6s} {spikes:>14s} "
                f"{_mib(r['temp']):>12s} {_mib(r['io']):>12s} {_mib(run):>12s} {_mib(r['process_kb'] * 1024):>12s} "
                f"{r['step_s'] * 1e3:9.2f} "
                f"{r['compile_s']:9.2f}"
            )
    print("spikes/sample: hidden + output. RSS step: growth of the resident-set peak while one step runs;")
    print("RSS proc: the process's ru_maxrss minus its value after the imports (compilation included).")
    print("Small RSS numbers are unreliable (the allocator reuses freed heap): XLA temp is the clean one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
