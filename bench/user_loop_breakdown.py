"""Where a plain user-written training loop loses time against the benchmark's own step (issue #17, item 4).

Run: ``python bench/user_loop_breakdown.py`` (``--rounds``, ``--calls``; ``--x64`` runs everything in
float64 with ``jax_enable_x64``; ``PYTHONPATH=/tmp/base python bench/user_loop_breakdown.py`` measures
another snncomp tree with the same script).

Network, batch and optimizer: jaxsnn's layered Yin-Yang example as in ``bench/train_throughput.py``
(25 input spikes -> 100 -> 3, batch 64, the example's ``chain(scale, clip, adam(schedule))``).

The "user loop" is what a user writes from the README without the benchmark's care::

    def loss(weights, inputs, targets):
        rec = exe.run(inputs, {"weight": weights, "delay": exe.params["delay"]})
        t = rec.spikes["lif2"].to_first_spike_times(3)
        ...first-spike MSE...

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    for step in ...:
        v, g = value_and_grad(w, inputs, targets)      # the batch as arguments
        updates, s = opt.update(g, s, w)               # optax, not jitted
        w = optax.apply_updates(w, updates)

Every variant below is timed in the same process, interleaved round by round (``--rounds`` rounds of
``--calls`` calls each; per round the median call; printed: the median over rounds and the range),
so that the 2-core machine's load hits all of them alike. Each variant that changes what is traced
compiles its own executable, so ``exe.run``'s inner ``jit`` cache cannot hand one variant another's
trace.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--x64", action="store_true", help="jax_enable_x64 (float64 everywhere)")
    parser.add_argument("--only", default="", help="comma-separated variant names to run (default all)")
    args = parser.parse_args(argv)

    import jax

    if args.x64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    import snncomp
    import snncomp.runtime as rt
    import snncomp.train
    from snncomp import losses

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from train_throughput import T_MAX, TAU_MEM, TAU_SYN, example_optimizer, make_problem

    problem = make_problem(args.batch)
    has_checks = hasattr(getattr(rt, "_checks", rt), "checked_in_jit")
    print(
        f"snncomp from {os.path.dirname(snncomp.__file__)}, jax {jax.__version__}, x64={args.x64}, "
        f"in-jit checks {'present' if has_checks else 'absent'} (EQX_ON_ERROR={os.environ.get('EQX_ON_ERROR', '')})"
    )

    def compile_exe() -> Any:
        net = snncomp.Network("jaxsnn_yinyang")
        x = net.input("inp", 5)
        h = net.lif("lif1", 100, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=1.0, max_spikes=1)
        o = net.lif("lif2", 3, tau_mem=TAU_MEM, tau_syn=TAU_SYN, v_threshold=1.0, max_spikes=1)
        net.connect(x, h, weight=problem["w1"])
        net.connect(h, o, weight=problem["w2"])
        return snncomp.compile(net.build(), target="jax", t_max=T_MAX)

    fdt = jnp.float64 if args.x64 else jnp.float32
    inputs = {
        "inp": snncomp.Spikes(
            times=jnp.asarray(problem["times"], fdt), neurons=jnp.asarray(problem["neurons"], jnp.int32)
        )
    }
    targets = jnp.asarray(problem["targets"], fdt)

    def user_loss(exe: Any) -> Any:
        delays = exe.params["delay"]

        def loss(weights: Any, inputs: Any, targets: Any) -> Any:
            rec = exe.run(inputs, {"weight": weights, "delay": delays})
            t = rec.spikes["lif2"].to_first_spike_times(3)
            t = jnp.minimum(jnp.where(jnp.isfinite(t), t, 2 * TAU_MEM), 2 * TAU_MEM)
            return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

        return loss

    def bench_loss(exe: Any) -> Any:
        """``bench/train_throughput.py``'s loss: ``apply`` and ``losses.finite_times``."""
        delays = exe.params["delay"]

        def loss(w: Any, inputs: Any, targets: Any) -> Any:
            rec = exe.apply({"weight": w, "delay": delays}, inputs)
            t = jnp.minimum(losses.finite_times(rec.spikes["lif2"].to_first_spike_times(3), 2 * TAU_MEM), 2 * TAU_MEM)
            return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

        return loss

    def scatter_first_loss(exe: Any) -> Any:
        """The user loss with first spike times by a scatter-min instead of ``to_first_spike_times``."""
        delays = exe.params["delay"]

        def loss(weights: Any, inputs: Any, targets: Any) -> Any:
            sp = exe.run(inputs, {"weight": weights, "delay": delays}).spikes["lif2"]
            b = jnp.arange(sp.times.shape[0])[:, None]
            n = jnp.where(sp.neurons >= 0, sp.neurons, 3)
            t = jnp.full((sp.times.shape[0], 4), jnp.inf, sp.times.dtype).at[b, n].min(sp.times)[:, :3]
            t = jnp.minimum(jnp.where(jnp.isfinite(t), t, 2 * TAU_MEM), 2 * TAU_MEM)
            return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

        return loss

    chain = example_optimizer()
    adam = optax.adam(0.005)

    def one_jit_step(loss: Any, opt: Any) -> Any:
        def step(w: Any, s: Any, inputs: Any, targets: Any) -> Any:
            v, g = jax.value_and_grad(loss)(w, inputs, targets)
            u, s = opt.update(g, s, w)
            return optax.apply_updates(w, u), s, v

        return jax.jit(step)

    variants: dict[str, Any] = {}

    def stateful(make_call: Any, w0: Any, opt: Any) -> Any:
        state = {"w": w0, "s": opt.init(w0)}

        def call() -> None:
            state["w"], state["s"], v = make_call(state["w"], state["s"])
            jax.block_until_ready((state["w"], v))

        return call

    # 1. The benchmark's step: one jit (value_and_grad + optimizer), apply(), batch as arguments.
    exe = compile_exe()
    w0 = exe.params["weight"]
    f = one_jit_step(bench_loss(exe), chain)
    variants["bench step (one jit, apply)"] = stateful(lambda w, s, f=f: f(w, s, inputs, targets), w0, chain)

    # 2. The user loop: jit(value_and_grad(run-loss)); optax eagerly.
    def eager_loop(vg: Any, opt: Any) -> Any:
        def call(w: Any, s: Any) -> Any:
            v, g = vg(w, inputs, targets)
            u, s = opt.update(g, s, w)
            return optax.apply_updates(w, u), s, v

        return call

    exe_u = compile_exe()
    vg_user = jax.jit(jax.value_and_grad(user_loss(exe_u)))
    variants["user loop (jit vg + eager chain)"] = stateful(eager_loop(vg_user, chain), w0, chain)
    variants["user loop, eager optax.adam"] = stateful(eager_loop(vg_user, adam), w0, adam)

    # 3. The same with the optimizer jitted separately (two dispatches per step).
    def jitted_update(opt: Any) -> Any:
        def upd(g: Any, s: Any, w: Any) -> Any:
            u, s = opt.update(g, s, w)
            return optax.apply_updates(w, u), s

        return jax.jit(upd)

    upd_chain = jitted_update(chain)

    def two_jits(w: Any, s: Any) -> Any:
        v, g = vg_user(w, inputs, targets)
        w, s = upd_chain(g, s, w)
        return w, s, v

    variants["user vg + jitted update (2 calls)"] = stateful(two_jits, w0, chain)

    # 4. The user loss and run() inside one jit with the optimizer: run() vs apply(), the loss's form.
    f_user = one_jit_step(user_loss(exe_u), chain)
    variants["one jit, user loss (run)"] = stateful(lambda w, s: f_user(w, s, inputs, targets), w0, chain)

    # 4b. The recommended user path: snncomp.train.make_step (one jit), the loss as a function of the recording.
    if hasattr(snncomp.train, "make_step"):

        def rec_loss(rec: Any, targets: Any) -> Any:
            t = rec.spikes["lif2"].to_first_spike_times(3)
            t = jnp.minimum(jnp.where(jnp.isfinite(t), t, 2 * TAU_MEM), 2 * TAU_MEM)
            return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

        exe_m = compile_exe()
        train_step = snncomp.train.make_step(exe_m, rec_loss, chain)
        p0 = exe_m.params
        m_state = {"p": p0, "s": train_step.init(p0)}

        def make_step_call() -> None:
            m_state["p"], m_state["s"], v, _ = train_step(m_state["p"], m_state["s"], inputs, targets)
            jax.block_until_ready((m_state["p"], v))

        variants["user loop, train.make_step"] = make_step_call

    # 5. ... without the in-jit input and parameter checks (equinox.error_if), same tree.
    if has_checks:
        checks = getattr(rt, "_checks", rt)  # the runtime package's module, or an older single-module runtime
        original = checks.checked_in_jit
        checks.checked_in_jit = lambda x, problems, messages: x
        exe_nc = compile_exe()
        f_nc = one_jit_step(user_loss(exe_nc), chain)
        # Trace now, while the checks are patched out (jit traces on the first call).
        jax.block_until_ready(f_nc(w0, chain.init(w0), inputs, targets))
        vg_nc = jax.jit(jax.value_and_grad(user_loss(exe_nc)))
        jax.block_until_ready(vg_nc(w0, inputs, targets))
        checks.checked_in_jit = original
        variants["one jit, no in-jit checks"] = stateful(lambda w, s: f_nc(w, s, inputs, targets), w0, chain)
        variants["user loop, no in-jit checks"] = stateful(eager_loop(vg_nc, chain), w0, chain)

    # 6. ... with the batch closed over (validated and sorted once on the host).
    exe_c = compile_exe()
    lc = user_loss(exe_c)
    f_c = jax.jit(
        lambda w, s: (lambda vg: (lambda us: (optax.apply_updates(w, us[0]), us[1], vg[0]))(chain.update(vg[1], s, w)))(
            jax.value_and_grad(lc)(w, inputs, targets)
        )
    )
    variants["one jit, batch constant"] = stateful(f_c, w0, chain)

    # 7. ... differentiating the whole params dict (delays too), Adam on the weights.
    exe_p = compile_exe()

    def loss_params(params: Any, inputs: Any, targets: Any) -> Any:
        rec = exe_p.run(inputs, params)
        t = rec.spikes["lif2"].to_first_spike_times(3)
        t = jnp.minimum(jnp.where(jnp.isfinite(t), t, 2 * TAU_MEM), 2 * TAU_MEM)
        return jnp.mean(jnp.sum(jnp.square((t - targets) / TAU_MEM), axis=-1))

    delays = exe_p.params["delay"]

    def step_params(w: Any, s: Any, inputs: Any, targets: Any) -> Any:
        v, g = jax.value_and_grad(loss_params)({"weight": w, "delay": delays}, inputs, targets)
        u, s = chain.update(g["weight"], s, w)
        return optax.apply_updates(w, u), s, v

    f_p = jax.jit(step_params)
    variants["one jit, grad of weight+delay"] = stateful(lambda w, s: f_p(w, s, inputs, targets), w0, chain)

    # 8. ... first spike times by a scatter-min instead of to_first_spike_times.
    exe_s = compile_exe()
    f_s = one_jit_step(scatter_first_loss(exe_s), chain)
    variants["one jit, scatter-min first times"] = stateful(lambda w, s: f_s(w, s, inputs, targets), w0, chain)

    # Pieces.
    variants["piece: vg alone (jit)"] = stateful(lambda w, s: (w, s, vg_user(w, inputs, targets)[0]), w0, chain)
    fwd = jax.jit(user_loss(exe_u))
    variants["piece: forward (loss value)"] = stateful(lambda w, s: (w, s, fwd(w, inputs, targets)), w0, chain)

    def eager_update(opt: Any) -> Any:
        g = jax.tree.map(lambda x: 1e-3 * jnp.ones_like(x), w0)

        def call(w: Any, s: Any) -> Any:
            u, s = opt.update(g, s, w)
            return optax.apply_updates(w, u), s, jnp.zeros(())

        return call

    variants["piece: eager chain update"] = stateful(eager_update(chain), w0, chain)
    variants["piece: eager adam update"] = stateful(eager_update(adam), w0, adam)
    noop = jax.jit(lambda w, s, inputs, targets: (w, s, targets[0, 0]))
    variants["piece: dispatch of a no-op jit, same args"] = stateful(
        lambda w, s: noop(w, s, inputs, targets), w0, chain
    )

    if args.only:
        keep = [k.strip() for k in args.only.split(",")]
        variants = {k: v for k, v in variants.items() if any(s in k for s in keep)}

    for call in variants.values():  # compile + warm up
        call()
        call()
    # Per round and variant: the median wall time of a call, the fastest call, and the median CPU time
    # of the process per call (all threads; less sensitive than wall time to other jobs on the machine).
    stats: dict[str, dict[str, list[float]]] = {k: {"wall": [], "best": [], "cpu": []} for k in variants}
    for _ in range(args.rounds):
        for name, call in variants.items():
            wall, cpu = [], []
            for _ in range(args.calls):
                c0, t0 = time.process_time(), time.perf_counter()
                call()
                wall.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            stats[name]["wall"].append(statistics.median(wall) * 1e3)
            stats[name]["best"].append(min(wall) * 1e3)
            stats[name]["cpu"].append(statistics.median(cpu) * 1e3)
    print(
        f"\nbatch {args.batch}; ms per call, median over {args.rounds} rounds of {args.calls} calls: "
        "wall [range of the rounds' medians], fastest call, CPU time of the process"
    )
    first = next(iter(stats))
    ref = {k: statistics.median(v) for k, v in stats[first].items()}
    print(f"  {'':42s} {'wall':>7s} {'range':>15s} {'/1st':>5s} {'fastest':>8s} {'/1st':>5s} {'cpu':>7s} {'/1st':>5s}")
    for name, st in stats.items():
        w, b, c = (statistics.median(st[k]) for k in ("wall", "best", "cpu"))
        print(
            f"  {name:42s} {w:7.3f} [{min(st['wall']):6.3f}-{max(st['wall']):6.3f}] {w / ref['wall']:5.2f} "
            f"{b:8.3f} {b / ref['best']:5.2f} {c:7.3f} {c / ref['cpu']:5.2f}"
        )

    # Why: how many primitives the eager optimizer dispatches, and whether a jitted call returns before
    # its computation is done (asynchronous dispatch) or only after it (a host callback in the program,
    # such as equinox.error_if's, makes the call synchronous).
    print("\neager optimizer update (opt.update + apply_updates), primitives dispatched one by one:")
    for name, opt in (("example chain", chain), ("optax.adam", adam)):
        jaxpr = jax.make_jaxpr(lambda g, s, w, opt=opt: optax.apply_updates(w, opt.update(g, s, w)[0]))(
            w0, opt.init(w0), w0
        )
        print(f"  {name}: {len(jaxpr.jaxpr.eqns)} primitives")

    def callbacks(fn: Any, *a: Any) -> int:
        return str(jax.make_jaxpr(fn)(*a)).count("pure_callback")

    def parts(vg: Any, opt: Any, n: int = 60, pause: float = 0.0) -> tuple[float, float, float]:
        state = {"w": w0, "s": opt.init(w0)}
        rows = []
        for _ in range(n):
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            v, g = vg(state["w"], inputs, targets)
            t1 = time.perf_counter()
            u, state["s"] = opt.update(g, state["s"], state["w"])
            state["w"] = optax.apply_updates(state["w"], u)
            t2 = time.perf_counter()
            jax.block_until_ready((state["w"], v))
            rows.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
        return tuple(statistics.median(r[k] for r in rows) * 1e3 for k in range(3))  # type: ignore[return-value]

    print("user loop, one step in parts (ms, median of 60): the jitted value_and_grad call returns after /")
    print("the eager update's dispatch / the final block_until_ready waits")
    loops = [("with in-jit checks" if has_checks else "this tree", vg_user)]
    if has_checks:
        loops.append(("without in-jit checks", vg_nc))
    for name, vg in loops:
        n_cb = callbacks(vg, w0, inputs, targets)
        for _ in range(2):
            a, b, c = parts(vg, chain)
            print(f"  {name:22s} ({n_cb} pure_callback): {a:6.3f} / {b:6.3f} / {c:6.3f}  = {a + b + c:6.3f}")
        a, b, c = parts(vg, chain, pause=1e-3)
        print(f"  {'':22s} 1 ms sleep before each call: {a:6.3f} / {b:6.3f} / {c:6.3f}")
        alone = []
        for _ in range(50):
            t0 = time.perf_counter()
            out = vg(w0, inputs, targets)
            t1 = time.perf_counter()
            jax.block_until_ready(out)
            alone.append((t1 - t0, time.perf_counter() - t1))
        print(
            f"  {'':22s} called alone: returns after {statistics.median(x[0] for x in alone) * 1e3:6.3f}, "
            f"then waits {statistics.median(x[1] for x in alone) * 1e3:6.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
