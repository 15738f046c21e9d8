"""Forward throughput of the jax target (samples per second, CPU), and a comparison with jaxsnn 0.3.0.

Run: ``python bench/sim_throughput.py`` (add ``--quick`` for fewer repeats).

Measured, each after a warm-up call (compile time is reported separately):

1. Yin-Yang-sized network, 5 -> 120 -> 3 single-spike LIF, batch 64 and 1024
   (layer-parallel schedule).
2. A recurrent network, 100 -> 200 recurrent LIF -> 10 multi-spike LIF,
   batch 64 (event-queue schedule): the forward pass, its cost per event (an event is one
   iteration of an event loop: an input delivery, a spike, or a recurrent delivery into the
   recurrent stage; a delivery from it or a spike in the output stage), and a training step's
   gradient, ``jax.jit(jax.value_and_grad(loss))`` through EventProp, the loss the mean squared
   first output spike times (the optimizer is left out: it costs nothing next to this).
3. jaxsnn 0.3.0's Yin-Yang example network (5 input channels each spiking 5
   times = 25 input spikes -> 100 -> 3, tau_mem 12 us, tau_syn 6 us,
   threshold 1, one spike per neuron) and the identical snncomp network, same
   weights, same inputs, batch 64, in the same run; the ratio is printed.

jaxsnn is never a dependency of snncomp: it runs in a subprocess with another
interpreter (``--jaxsnn-python``, default ``$SNNCOMP_JAXSNN_PYTHON``, this
interpreter if it can import jaxsnn, else ``../venv-bench/bin/python``), a venv made with
``python3 -m venv ../venv-bench && ../venv-bench/bin/pip install -r bench/requirements-jaxsnn.txt``
(jaxsnn 0.3.0 on jax/jaxlib 0.10.2, pinned there).
Without it, that part is skipped. Timings are the median of ``--repeat``
calls of the whole ``Executable.run`` (host validation included) with
``jax.block_until_ready``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TAU_SYN_JAXSNN = 6e-6
TAU_MEM_JAXSNN = 12e-6


def _median_time(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _yinyang_points(n: int, seed: int) -> np.ndarray:
    """Points in the unit square as the 5 Yin-Yang features (x, y, 1-x, 1-y, bias=0)."""
    xy = np.random.default_rng(seed).uniform(0.0, 1.0, (n, 2))
    return np.concatenate([xy, 1.0 - xy, np.zeros((n, 1))], axis=1)


# --------------------------------------------------------------------------- jaxsnn worker


def _jaxsnn_worker(data_path: str, out_path: str, repeat: int) -> None:
    """Runs inside the jaxsnn interpreter: forward pass of its Yin-Yang example network."""
    import jax
    import jax.numpy as jnp
    from jaxsnn.event.modules import LIF, LIFParameters, Linear, Source
    from jaxsnn.event.topology import Topology
    from jaxsnn.event.types import Spike

    data = np.load(data_path)
    params = LIFParameters(v_reset=-1000.0, v_th=1.0, tau_syn=TAU_SYN_JAXSNN, tau_mem=TAU_MEM_JAXSNN)
    topo = Topology(t_max=4.0 * TAU_SYN_JAXSNN, backprop_method="eventprop")
    topo.add(
        {
            "inp": Source(5),
            "lif1": LIF(100, 100 + 25, params),
            "lif2": LIF(3, 103, params),
            "syn1": Linear(mean=3.0 / 5, std=1.6 / 5),
            "syn2": Linear(mean=0.5, std=0.8),
        }
    )
    topo.connect([("inp", "syn1"), ("syn1", "lif1"), ("lif1", "syn2"), ("syn2", "lif2")])
    init_fn, apply_fn = topo.done()
    weights = init_fn(jax.random.PRNGKey(0))
    weights["syn1"] = jnp.asarray(data["w1"], jnp.float32)
    weights["syn2"] = jnp.asarray(data["w2"], jnp.float32)
    times = jnp.asarray(data["times"], jnp.float32)
    idx = jnp.asarray(data["neurons"], jnp.int32)
    inputs = {
        "inp": Spike(
            time=times,
            idx=idx,
            current=jnp.zeros_like(times),
            layer_idx=jnp.zeros(times.shape, int),
            internal=jnp.ones(times.shape, bool),
        )
    }
    forward = jax.jit(apply_fn)
    t0 = time.perf_counter()
    out = jax.block_until_ready(forward(inputs, weights))
    compile_s = time.perf_counter() - t0
    seconds = _median_time(lambda: jax.block_until_ready(forward(inputs, weights)), repeat)
    spikes = out["lif2"]
    t = np.asarray(spikes.time)
    n = np.asarray(spikes.idx)
    first = np.full((t.shape[0], 3), np.inf)
    for b in range(t.shape[0]):
        for k in range(t.shape[1]):
            if 0 <= n[b, k] < 3 and np.isfinite(t[b, k]):
                first[b, n[b, k]] = min(first[b, n[b, k]], t[b, k])
    Path(out_path).write_text(
        json.dumps({"seconds": seconds, "compile_s": compile_s, "first": first.tolist(), "jax": jax.__version__})
    )


# --------------------------------------------------------------------------- snncomp side


def _time_run(exe: Any, inputs: dict, repeat: int) -> tuple[float, float]:
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(exe.run(inputs))
    first = time.perf_counter() - t0
    return _median_time(lambda: jax.block_until_ready(exe.run(inputs)), repeat), first


def _yinyang_net(seed: int = 0) -> Any:
    import snncomp

    net = snncomp.Network("yinyang")
    x = net.input("x", 5)
    h = net.lif("hidden", 120, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    o = net.lif("out", 3, tau_mem=10e-3, tau_syn=5e-3, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(1.5, 0.8, seed=seed))
    net.connect(h, o, init=snncomp.init.normal(0.2, 0.4, seed=seed + 1))
    return net.build()


def _recurrent_net(seed: int = 0) -> Any:
    import snncomp

    rng = np.random.default_rng(seed)
    net = snncomp.Network("recurrent")
    x = net.input("x", 100)
    r = net.lif("rec", 200, tau_mem=20e-3, tau_syn=10e-3, t_refrac=2e-3)
    o = net.lif("out", 10, tau_mem=20e-3, tau_syn=10e-3, t_refrac=2e-3, max_spikes=20)
    net.connect(x, r, weight=rng.normal(0.15, 0.1, (100, 200)), mask=rng.random((100, 200)) < 0.5)
    net.connect(r, r, weight=rng.normal(0.0, 0.15, (200, 200)), mask=rng.random((200, 200)) < 0.1, delay=1e-3)
    net.connect(r, o, weight=rng.normal(0.1, 0.1, (200, 10)))
    return net.build()


def _recurrent_events(rec: Any, x: Any, t_max: float, delay: float) -> float:
    """Mean event-loop iterations per sample of the recurrent network (inputs, spikes, deliveries)."""
    rec_t = np.asarray(rec.spikes["rec"].times)
    inputs = np.sum(np.asarray(x.neurons) >= 0, axis=-1)
    spikes = np.sum(np.isfinite(rec_t), axis=-1)
    internal = np.sum(rec_t + delay < t_max, axis=-1)
    out = np.sum(np.isfinite(np.asarray(rec.spikes["out"].times)), axis=-1)
    return float(np.mean(inputs + spikes + internal + spikes + out))


def _time_grad(exe: Any, inputs: dict, repeat: int, t_max: float) -> tuple[float, float]:
    """A training step's gradient: value_and_grad of the mean squared first output spike times."""
    import jax
    import jax.numpy as jnp

    def loss(params: Any) -> Any:
        out = exe.apply(params, inputs).spikes["out"].to_first_spike_times(10)
        return jnp.mean(jnp.where(jnp.isfinite(out), out, t_max) ** 2)

    step = jax.jit(jax.value_and_grad(loss))
    t0 = time.perf_counter()
    jax.block_until_ready(step(exe.params))
    first = time.perf_counter() - t0
    return _median_time(lambda: jax.block_until_ready(step(exe.params)), repeat), first


def _encode(features: np.ndarray, t_late: float, duplication: int = 1) -> Any:
    import snncomp

    t = np.repeat(features * t_late, duplication, axis=1)
    n = np.repeat(np.arange(features.shape[1])[None, :], features.shape[0], axis=0)
    n = np.repeat(n, duplication, axis=1)
    return snncomp.Spikes.from_lists(list(t), list(n))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per measurement (median)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--jaxsnn-python", default=os.environ.get("SNNCOMP_JAXSNN_PYTHON"))
    parser.add_argument("--skip-jaxsnn", action="store_true")
    parser.add_argument("--jaxsnn-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repeat = 5 if args.quick else args.repeat
    if args.jaxsnn_worker:
        _jaxsnn_worker(*args.jaxsnn_worker, repeat)
        return 0

    import jax

    import snncomp

    platform = jax.devices()[0].platform
    print(f"snncomp {snncomp.__version__}, jax {jax.__version__}, {platform}, {os.cpu_count()} CPU cores")
    rows: list[tuple[str, int, float, float]] = []

    exe = snncomp.compile(_yinyang_net(), t_max=20e-3)
    for batch in (64, 1024):
        inputs = {"x": _encode(_yinyang_points(batch, 1), t_late=10e-3)}
        sec, first = _time_run(exe, inputs, repeat)
        rows.append((f"yin-yang 5-120-3 (layer-parallel), batch {batch}", batch, sec, first))

    exe = snncomp.compile(_recurrent_net(), t_max=50e-3, spikes_per_neuron=10)
    # The same network with every event-queue stage in the vectorized lax.while_loop (event_loop="auto"
    # runs these multi-spike stages in C), timed alternately with the default in the same rounds.
    exe_vec = snncomp.compile(_recurrent_net(), t_max=50e-3, spikes_per_neuron=10, event_loop="vectorized")
    rng = np.random.default_rng(2)
    batch = 64
    t = rng.uniform(0.0, 50e-3, (batch, 500))
    n = rng.integers(0, 100, (batch, 500))
    inputs = {"x": snncomp.Spikes.from_lists(list(t), list(n))}
    calls = max(3, repeat // 5)
    _, first = _time_run(exe, inputs, 1)
    _, first_vec = _time_run(exe_vec, inputs, 1)
    fwd_rounds, vec_rounds = [], []
    for _ in range(3):
        fwd_rounds.append(_time_run(exe, inputs, calls)[0])
        vec_rounds.append(_time_run(exe_vec, inputs, calls)[0])
    fwd_sec, vec_sec = statistics.median(fwd_rounds), statistics.median(vec_rounds)
    rec = exe.run(inputs)
    rec_vec = exe_vec.run(inputs)
    loops = {str(line).strip() for line in str(exe.report()).splitlines() if "event loop" in str(line)}
    rows.append((f"recurrent 100-200rec-10 (event-queue), batch {batch}", batch, fwd_sec, first))
    rows.append((f"recurrent 100-200rec-10, event_loop='vectorized', batch {batch}", batch, vec_sec, first_vec))
    counts = {k: float(np.mean(np.asarray(v.count()))) for k, v in rec.spikes.items()}
    overflow = {k: float(np.mean(np.asarray(v))) for k, v in rec.overflow.items()}
    events = _recurrent_events(rec, inputs["x"], t_max=50e-3, delay=1e-3)
    grad_sec, grad_first = _time_grad(exe, inputs, max(3, repeat // 5), t_max=50e-3)
    rows.append((f"recurrent 100-200rec-10, value_and_grad (EventProp), batch {batch}", batch, grad_sec, grad_first))

    print(f"\n{'network':58s} {'ms/batch':>9s} {'samples/s':>11s} {'1st call s':>10s}")
    for name, b, sec, first in rows:
        print(f"{name:58s} {sec * 1e3:9.3f} {b / sec:11.0f} {first:10.2f}")
    print(f"recurrent: mean spikes per sample {counts}, overflow fraction {overflow}")
    same = np.mean(np.all(np.asarray(rec.spikes["rec"].neurons) == np.asarray(rec_vec.spikes["rec"].neurons), axis=-1))
    ratios = [v / f for f, v in zip(fwd_rounds, vec_rounds)]
    print(
        f"recurrent: {'; '.join(sorted(loops))}; forward {statistics.median(ratios):.2f}x the vectorized loop "
        f"[{min(ratios):.2f}-{max(ratios):.2f} over 3 alternating rounds]; samples whose 'rec' spikes come from the "
        f"same neurons in the same order: {same:.0%} (float32 here; the C loop computes in float64)"
    )
    print(
        f"recurrent: {events:.0f} events per sample (both stages); forward {fwd_sec / (batch * events) * 1e9:.0f} ns, "
        f"value_and_grad {grad_sec / (batch * events) * 1e9:.0f} ns per event and sample"
    )

    # ------------------------------------------------------------------ jaxsnn comparison
    batch = 64
    rng = np.random.default_rng(3)
    w1 = rng.normal(3.0 / 5, 1.6 / 5, (5, 100)).astype(np.float32)
    w2 = rng.normal(0.5, 0.8, (100, 3)).astype(np.float32)
    feats = _yinyang_points(batch, 4)
    t_late = 2.0 * TAU_SYN_JAXSNN
    times = np.repeat(feats * t_late, 5, axis=1).astype(np.float32)
    neurons = np.repeat(np.arange(5)[None, :], batch, axis=0).repeat(5, axis=1)
    order = np.argsort(times, axis=1, kind="stable")
    times = np.take_along_axis(times, order, axis=1)
    neurons = np.take_along_axis(neurons, order, axis=1)

    net = snncomp.Network("jaxsnn_yinyang")
    x = net.input("inp", 5)
    h = net.lif("lif1", 100, tau_mem=TAU_MEM_JAXSNN, tau_syn=TAU_SYN_JAXSNN, v_threshold=1.0, max_spikes=1)
    o = net.lif("lif2", 3, tau_mem=TAU_MEM_JAXSNN, tau_syn=TAU_SYN_JAXSNN, v_threshold=1.0, max_spikes=1)
    net.connect(x, h, weight=w1)
    net.connect(h, o, weight=w2)
    exe = snncomp.compile(net.build(), t_max=4.0 * TAU_SYN_JAXSNN)
    inputs = {"inp": snncomp.Spikes(times=times, neurons=neurons.astype(np.int32))}
    ours, ours_first = _time_run(exe, inputs, repeat)
    ours_t = np.asarray(exe.run(inputs).spikes["lif2"].to_first_spike_times(3))
    print(f"\njaxsnn Yin-Yang network (25 input spikes -> 100 -> 3), batch {batch}:")
    print(f"  snncomp  {ours * 1e3:8.3f} ms/batch  {batch / ours:9.0f} samples/s  (first call {ours_first:.2f} s)")
    python = args.jaxsnn_python
    if python is None:
        import importlib.util

        if importlib.util.find_spec("jaxsnn") is not None:  # installed here (e.g. a `bench` extra)
            python = sys.executable
        else:
            python = str(Path(__file__).resolve().parents[2] / "venv-bench" / "bin" / "python")
    if args.skip_jaxsnn or not Path(python).exists():
        print(f"  jaxsnn   skipped (no interpreter with jaxsnn at {python}; see --jaxsnn-python)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npz"
        out = Path(tmp) / "out.json"
        np.savez(data, w1=w1, w2=w2, times=times, neurons=neurons)
        cmd = [python, __file__, "--repeat", str(repeat), "--jaxsnn-worker", str(data), str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print("  jaxsnn   failed:\n" + res.stderr[-2000:])
            return 1
        theirs = json.loads(out.read_text())
    sec = theirs["seconds"]
    their_t = np.asarray(theirs["first"])
    both = np.isfinite(ours_t) & np.isfinite(their_t)
    agree = np.mean(np.isfinite(ours_t) == np.isfinite(their_t))
    diff = float(np.max(np.abs(ours_t[both] - their_t[both]))) if both.any() else float("nan")
    first = theirs["compile_s"]
    print(f"  jaxsnn   {sec * 1e3:8.3f} ms/batch  {batch / sec:9.0f} samples/s  (first call {first:.2f} s)")
    print(f"  ratio    {sec / ours:.1f}x jaxsnn's forward throughput")
    print(f"  output first-spike agreement: same spiking pattern in {agree:.1%} of entries, max |dt| = {diff:.2e} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
