"""The cost of the checks compiled into a traced run (issue 16), in one process, alternating.

Run: ``python bench/check_cost.py``. The training step of ``bench/train_throughput.py`` (jaxsnn's
layered Yin-Yang example, batch 64, the batch as jit arguments as in ``train.fit``, so inputs and
parameters are traced and checked inside the program) is built four times: with the checks
(``all``), with them stubbed out (``none``), with only their predicates computed (``flags-only``)
and with an ``equinox.error_if`` that never fires (``error_if-const``); the four are timed
alternately, in reversed order every other round, 9 rounds of 30 steps. Prints min and median ms.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from train_throughput import T_MAX, TAU_MEM, TAU_SYN, example_optimizer, make_problem

import snncomp
from snncomp import Spikes, runtime

prob = make_problem(64)
net = snncomp.Network("yy")
x = net.input("x", 5)
h = net.lif("h", 100, tau_mem=TAU_MEM, tau_syn=TAU_SYN, max_spikes=1)
o = net.lif("o", 3, tau_mem=TAU_MEM, tau_syn=TAU_SYN, max_spikes=1)
net.connect(x, h, weight=prob["w1"])
net.connect(h, o, weight=prob["w2"])
exe = snncomp.compile(net, t_max=T_MAX)
opt = example_optimizer()


def make_step():
    def loss(p, t, n, y):
        f = exe.apply(p, {"x": Spikes(times=t, neurons=n)}).spikes["o"].to_first_spike_times(3)
        f = jnp.where(jnp.isfinite(f), f, 2 * TAU_MEM)
        return jnp.mean((f - y) ** 2)

    @jax.jit
    def step(p, s, t, n, y):
        v, g = jax.value_and_grad(loss)(p, t, n, y)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, v

    return step


real = runtime._checks.checked_in_jit  # where check_params and the input checks look it up
variants = {}


def variant(name, fn):
    runtime._checks.checked_in_jit = fn
    variants[name] = make_step()


variant("all", real)
variant("none", lambda x, problems, messages: x)
variant("flags-only", lambda x, problems, messages: x + 0 * jnp.any(problems(x)).astype(x.dtype))
variant("error_if-const", lambda x, problems, messages: eqx.error_if(x, jnp.zeros((), bool), messages[0]))
p0 = exe.params
s0 = opt.init(p0)
args = (jnp.asarray(prob["times"]), jnp.asarray(prob["neurons"]), jnp.asarray(prob["targets"]))
for f in variants.values():
    jax.block_until_ready(f(p0, s0, *args))
res = {k: [] for k in variants}
for r in range(9):
    for k, f in list(variants.items()) if r % 2 else list(variants.items())[::-1]:
        ts = []
        for _ in range(30):
            t0 = time.perf_counter()
            jax.block_until_ready(f(p0, s0, *args))
            ts.append(time.perf_counter() - t0)
        res[k].append(np.median(ts) * 1e3)
for k, v in res.items():
    print(k, f"ms/step min {min(v):.2f} median {np.median(v):.2f}")
