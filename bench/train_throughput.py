"""Training-step throughput (forward + backward + Adam) of the jax target, CPU.

Run: ``python bench/train_throughput.py``. Network: the shape of jaxsnn's EventProp Yin-Yang example,
25 input spikes (5 channels x 5) -> 100 LIF -> 3 LIF, tau_mem 12 us, tau_syn 6 us, one spike per
neuron, batch 64; loss: time-to-first-spike cross-entropy. Prints the median time of the jitted step
after compilation, for both adjoints.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import snncomp
from snncomp import losses

TAU_SYN, TAU_MEM = 6e-6, 12e-6
T_MAX = 4 * TAU_SYN


def make_step(exe: Any, opt: optax.GradientTransformation, inputs: dict, labels: jax.Array) -> Any:
    """One jitted training step: loss, EventProp (or autodiff) gradient, Adam update."""

    def loss(p: Any) -> jax.Array:
        t = exe.apply(p, inputs).spikes["o"].to_first_spike_times(3)
        return losses.ttfs_cross_entropy(t, labels, tau=TAU_SYN, t_max=T_MAX)

    @jax.jit
    def step(p: Any, s: Any) -> tuple[Any, Any, jax.Array]:
        v, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, v

    return step


def main(repeat: int = 50, batch: int = 64) -> None:
    net = snncomp.Network("yy25")
    x = net.input("x", 25)
    h = net.lif("h", 100, tau_mem=TAU_MEM, tau_syn=TAU_SYN, max_spikes=1)
    o = net.lif("o", 3, tau_mem=TAU_MEM, tau_syn=TAU_SYN, max_spikes=1)
    net.connect(x, h, init=snncomp.init.normal(0.5, 0.4, seed=0))
    net.connect(h, o, init=snncomp.init.normal(0.3, 0.3, seed=1))
    rng = np.random.default_rng(0)
    first = np.repeat(rng.uniform(0.0, 0.5 * T_MAX, (batch, 5)), 5, axis=1).astype(np.float32)
    inputs = {"x": snncomp.Spikes.from_first_spike_times(first)}
    labels = jnp.asarray(rng.integers(0, 3, batch))
    for adjoint in ("eventprop", "autodiff"):
        exe = snncomp.compile(net, target="jax", t_max=T_MAX, adjoint=adjoint)
        opt = optax.adam(1e-3)
        step = make_step(exe, opt, inputs, labels)
        p, s = exe.params, opt.init(exe.params)
        t0 = time.perf_counter()
        jax.block_until_ready(step(p, s))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            p, s, v = step(p, s)
            jax.block_until_ready(v)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1e3
        print(
            f"{adjoint:>9}: {ms:.2f} ms per training step of {batch} ({batch / ms * 1e3:,.0f} samples/s), "
            f"first call {compile_s:.1f} s"
        )


if __name__ == "__main__":
    main()
