"""Two versions of snncomp side by side in one process: the event-queue networks' forward and gradient.

Run: ``python bench/ab_versions.py BASE_TREE [rec|ms|sim]`` where ``BASE_TREE`` is a checkout of an
older version (``git worktree add /tmp/base <commit>``); this checkout is the other. Both packages
are copied under a temporary folder with their absolute self-imports renamed, imported together, fed
the same network, weights and batch, and timed alternately (``ROUNDS`` rounds of ``CALLS`` calls
each, environment variables), so a shared machine's load hits both alike. Prints the loss of both
(they must agree) and, per measurement, the range of medians and the ratio base/new per round.

Networks: ``rec``, jaxsnn's recurrent Yin-Yang size (5 -> 100 LIF with a dense 100x100 recurrent
projection, delay 0 -> 3 LIF; tau_mem 10 ms, tau_syn 5 ms, one spike per neuron, 20 ms window,
batch 64); ``ms``, a multi-spike recurrent network like ``bench/sim_throughput.py``'s (100 -> 200
recurrent, 10 % sparse, 1 ms delay, 2 ms refractory -> 10; 50 ms; 500 input spikes; batch 64); ``sim``,
``bench/sim_throughput.py``'s recurrent network itself (same weights and input spikes; the loss reads the
first spikes of 3 of its 10 outputs).
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BASE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/base"
HERE = str(Path(__file__).resolve().parent.parent)
WORK = tempfile.mkdtemp(prefix="snncomp-ab-")
for name, src in (("snncomp_base", f"{BASE}/snncomp"), ("snncomp_new", f"{HERE}/snncomp")):
    shutil.copytree(src, f"{WORK}/{name}")
    for root, _, files in os.walk(f"{WORK}/{name}"):
        for fn in files:
            if fn.endswith(".py"):
                fp = Path(root, fn)
                txt = fp.read_text()
                fp.write_text(
                    txt.replace('"snncomp.', f'"{name}.').replace("import snncomp\n", f"import {name} as snncomp\n")
                )
sys.path.insert(0, WORK)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import snncomp_base  # noqa: E402
import snncomp_new  # noqa: E402

which = sys.argv[2] if len(sys.argv) > 2 else "rec"
B = 64


def build(mod):
    rng = np.random.default_rng(0)
    if which == "rec":
        TS, TM = 5e-3, 1e-2
        TMAX = 4 * TS
        net = mod.Network("rec")
        x = net.input("x", 5)
        h = net.lif("h", 100, tau_mem=TM, tau_syn=TS, max_spikes=1)
        o = net.lif("o", 3, tau_mem=TM, tau_syn=TS, max_spikes=1)
        net.connect(x, h, weight=rng.normal(3.0, 1.6, (5, 100)))
        net.connect(h, o, weight=rng.normal(0.5, 0.8, (100, 3)))
        net.connect(h, h, weight=rng.normal(0, 0.1, (100, 100)))
        pts = rng.uniform(0, 1, (B, 2))
        t = np.stack([pts[:, 0], pts[:, 1], 1 - pts[:, 0], 1 - pts[:, 1], np.zeros(B)], 1) * 2 * TS
        n = np.tile(np.arange(5), (B, 1)).astype(np.int32)
        exe = mod.compile(net, t_max=TMAX)
    elif which == "sim":  # bench/sim_throughput.py's recurrent network, weights and inputs exactly
        TMAX = 50e-3
        net = mod.Network("sim")
        x = net.input("x", 100)
        h = net.lif("h", 200, tau_mem=20e-3, tau_syn=10e-3, t_refrac=2e-3)
        o = net.lif("o", 10, tau_mem=20e-3, tau_syn=10e-3, t_refrac=2e-3, max_spikes=20)
        net.connect(x, h, weight=rng.normal(0.15, 0.1, (100, 200)), mask=rng.random((100, 200)) < 0.5)
        net.connect(h, h, weight=rng.normal(0.0, 0.15, (200, 200)), mask=rng.random((200, 200)) < 0.1, delay=1e-3)
        net.connect(h, o, weight=rng.normal(0.1, 0.1, (200, 10)))
        exe = mod.compile(net.build(), t_max=TMAX, spikes_per_neuron=10)
        rng2 = np.random.default_rng(2)
        t = rng2.uniform(0.0, TMAX, (B, 500))
        n = rng2.integers(0, 100, (B, 500)).astype(np.int32)
    else:  # multi-spike recurrent (like bench/sim_throughput.py's network)
        TMAX = 50e-3
        net = mod.Network("ms")
        x = net.input("x", 100)
        h = net.lif("h", 200, tau_mem=10e-3, tau_syn=5e-3, t_refrac=2e-3)
        o = net.lif("o", 10, tau_mem=10e-3, tau_syn=5e-3)
        net.connect(x, h, weight=rng.normal(0.5, 0.3, (100, 200)) * (rng.uniform(size=(100, 200)) < 0.2))
        net.connect(h, h, weight=rng.normal(0.0, 0.4, (200, 200)) * (rng.uniform(size=(200, 200)) < 0.1), delay=1e-3)
        net.connect(h, o, weight=rng.normal(0.3, 0.3, (200, 10)))
        t = rng.uniform(0, TMAX, (B, 500))
        n = rng.integers(0, 100, (B, 500)).astype(np.int32)
        exe = mod.compile(net, t_max=TMAX, spikes_per_neuron=16)
    o_ = np.argsort(t, 1)
    t = np.take_along_axis(t, o_, 1).astype(np.float32)
    n = np.take_along_axis(n, o_, 1)

    def loss(p, t, n):
        r = exe.apply(p, {"x": mod.Spikes(times=t, neurons=n)})
        f = r.spikes["o"].to_first_spike_times(r.spikes["o"].neurons.shape[-1] and 3)
        return jnp.mean(jnp.where(jnp.isfinite(f), f, TMAX) ** 2)

    fwd = jax.jit(loss)
    vg = jax.jit(jax.value_and_grad(loss))
    args = (exe.params, jnp.asarray(t), jnp.asarray(n))
    return fwd, vg, args, exe


fns = {k: build(m) for k, m in (("base", snncomp_base), ("new", snncomp_new))}
for k, (fwd, vg, args, _exe) in fns.items():
    jax.block_until_ready(fwd(*args))
    jax.block_until_ready(vg(*args))
    print(k, "loss", float(fwd(*args)))
res = {(k, w): [] for k in fns for w in ("fwd", "vg")}
for _r in range(int(os.environ.get("ROUNDS", 5))):
    for k, (fwd, vg, args, _exe) in fns.items():
        for w, f in (("fwd", fwd), ("vg", vg)):
            ts = []
            for _ in range(int(os.environ.get("CALLS", 10))):
                t0 = time.perf_counter()
                jax.block_until_ready(f(*args))
                ts.append(time.perf_counter() - t0)
            res[(k, w)].append(np.median(ts) * 1e3)
for w in ("fwd", "vg"):
    b, nn = np.array(res[("base", w)]), np.array(res[("new", w)])
    ratios = " ".join(f"{x:.2f}" for x in b / nn)
    print(f"{which} {w}: base {b.min():.2f}-{np.median(b):.2f} ms, new {nn.min():.2f}-{np.median(nn):.2f} ms")
    print(f"  ratio base/new per round: {ratios}")
