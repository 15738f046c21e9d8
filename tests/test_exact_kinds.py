"""Instantaneous synapses (``lif`` with ``tau_syn = 0``, ``if``) and bias currents on the jax target.

Spike times are checked against an independent numpy reference written here from the equations in
``snncomp.ir`` (segment by segment in closed form, crossings found by sampling and bisection: it
shares no code with the simulator), inputs on a time grid (simultaneous inputs sum before the
threshold test); gradients against central finite differences.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import snncomp
from snncomp import Spikes

T_MAX = 40e-3


@pytest.fixture(autouse=True)
def _x64() -> Any:
    # Within each test only: a global switch would leak into other test modules of the same worker.
    with jax.enable_x64(True):
        yield


def _segment_v(v0: float, i0: float, s: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(v, I)`` after ``s`` of free evolution, absolute units, from the IR's equations."""
    b = p["bias"]
    if p["kind"] == "if":
        return v0 + b * s, np.zeros_like(s)
    tm, ts, vl = p["tau_mem"], p["tau_syn"], p["v_leak"]
    if ts == 0:
        return vl + b + (v0 - vl - b) * np.exp(-s / tm), np.zeros_like(s)
    k = (i0 - b) * ts / (ts - tm)
    c1 = v0 - vl - b - k
    return vl + b + c1 * np.exp(-s / tm) + k * np.exp(-s / ts), b + (i0 - b) * np.exp(-s / ts)


def _reference(p: dict, times: np.ndarray, weights: np.ndarray, max_spikes: int) -> list[float]:
    """One neuron's spike times: inputs (``times``, ``weights``) grouped by instant, closed form between."""
    v = p.get("v_leak", 0.0) if p["kind"] != "if" else 0.0
    i = 0.0
    t = 0.0
    out: list[float] = []
    instants = [*sorted(set(times.tolist())), T_MAX]
    for t_next in instants:
        while len(out) < max_spikes:
            span = t_next - t
            if span <= 0:
                break
            s = np.linspace(0.0, span, 4001)
            vs, _ = _segment_v(v, i, s, p)
            above = np.nonzero(vs >= p["v_threshold"])[0]
            if above.size == 0:
                break
            hi = s[above[0]]
            lo = s[max(above[0] - 1, 0)]
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if _segment_v(v, i, np.asarray(mid), p)[0] >= p["v_threshold"]:
                    hi = mid
                else:
                    lo = mid
            _, i_s = _segment_v(v, i, np.asarray(hi), p)
            t, v, i = t + hi, p["v_reset"], float(i_s)
            if t >= T_MAX:
                return out
            out.append(t)
        if t_next >= T_MAX or len(out) >= max_spikes:
            break
        v_s, i_s = _segment_v(v, i, np.asarray(t_next - t), p)
        v, i, t = float(v_s), float(i_s), t_next
        w = float(weights[times == t_next].sum())
        if p["kind"] == "lif" and p["tau_syn"] > 0:
            i += w
        else:
            v += w
            if v >= p["v_threshold"] and len(out) < max_spikes:  # the summed jump crosses: a spike now
                out.append(t)
                v = p["v_reset"]
    return out


def _one_neuron(p: dict, max_spikes: int) -> snncomp.Network:
    net = snncomp.Network("one")
    x = net.input("x", 1)
    fields = {k: v for k, v in p.items() if k not in ("kind",)}
    if p["kind"] == "if":
        fields = {k: fields[k] for k in ("v_threshold", "v_reset", "bias")}
        h = net.if_("h", 1, max_spikes=max_spikes, **fields)
    else:
        h = net.lif("h", 1, max_spikes=max_spikes, **fields)
    net.connect(x, h, weight=1.0)
    return net


def _run(net: snncomp.Network, times: np.ndarray, weights: np.ndarray) -> list[float]:
    # Every input spike has its own channel, so that it carries its own weight ([E, 1] projection).
    from snncomp.ir import Edge, InputNode, Network

    e = max(len(times), 1)
    node = net.build().node("h")
    w = np.asarray(weights if len(times) else [0.0], np.float64).reshape(-1, 1)
    ir = Network(name="w", nodes=(InputNode(name="x", size=e), node), edges=(Edge(source="x", target="h", weight=w),))
    exe = snncomp.compile(ir, t_max=T_MAX, dtype="float64")
    if len(times):
        inp = {"x": Spikes(times=jnp.asarray(times[None]), neurons=jnp.arange(e, dtype=jnp.int32)[None])}
    else:
        inp = {"x": Spikes.from_lists([[]], [[]])}
    t = np.asarray(exe.run(inp).spikes["h"].times)[0]
    return sorted(t[np.isfinite(t)].tolist())


KINDS = {
    "lif-jump": {"kind": "lif", "tau_mem": 10e-3, "tau_syn": 0.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0},
    "if": {"kind": "if", "v_threshold": 1.0, "v_reset": 0.0},
    "lif-cuba": {"kind": "lif", "tau_mem": 10e-3, "tau_syn": 3e-3, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0},
}


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(sorted(KINDS)),
    slots=st.lists(st.integers(0, 30), min_size=0, max_size=10),
    weights=st.lists(st.floats(-0.6, 0.9), min_size=10, max_size=10),
    bias_frac=st.floats(-0.5, 1.6),
    max_spikes=st.sampled_from([1, 4]),
)
def test_spike_times_match_the_reference_on_a_grid(
    kind: str, slots: list[int], weights: list[float], bias_frac: float, max_spikes: int
) -> None:
    # Inputs on a 1 ms grid: several arrive at one instant and must be summed before the threshold test.
    p = dict(KINDS[kind])
    if kind == "if":
        p["bias"] = bias_frac * 40.0  # [1/s]: up to 64 per second, a spike every ~16 ms
    elif kind == "lif-cuba":
        p["bias"] = min(bias_frac, 0.9)  # with a synaptic current the rest must stay below threshold
    else:
        p["bias"] = bias_frac
    times = np.asarray(sorted(s * 1e-3 for s in slots), np.float64)
    w = np.asarray(weights[: len(times)], np.float64)
    want = _reference(p, times, w, max_spikes)
    got = _run(_one_neuron(p, max_spikes), times, w)
    assert len(got) == len(want), (got, want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_simultaneous_inputs_are_summed_before_the_threshold_test() -> None:
    # 0.658 + (-0.091 + 0.141 + 0.271) = 0.979 < 1: no spike, although the excitatory pair alone
    # would cross (the case an approximated instantaneous synapse got wrong).
    p = dict(KINDS["lif-jump"], bias=0.0, tau_mem=1.0)
    times = np.asarray([1e-3, 2e-3, 2e-3, 2e-3])
    w = np.asarray([0.658, -0.091, 0.141, 0.271])
    assert _run(_one_neuron(p, 1), times, w) == []
    w2 = np.asarray([0.658, -0.091, 0.141, 0.300])
    assert _run(_one_neuron(p, 1), times, w2) == pytest.approx([2e-3], abs=1e-15)


def test_tonic_bias_fires_in_closed_form() -> None:
    p = dict(KINDS["lif-jump"], bias=1.5)
    got = _run(_one_neuron(p, 10), np.zeros(0), np.zeros(0))
    period = 10e-3 * np.log(1.5 / 0.5)
    np.testing.assert_allclose(got, period * np.arange(1, len(got) + 1), rtol=1e-12)
    assert len(got) == int(T_MAX // period)
    q = dict(KINDS["if"], bias=50.0)  # dv/dt = 50/s: threshold every 20 ms
    np.testing.assert_allclose(_run(_one_neuron(q, 10), np.zeros(0), np.zeros(0)), [20e-3], rtol=1e-12)


def test_biased_synaptic_current_matches_the_reference_trace() -> None:
    # With tau_syn > 0 the bias drives I from 0 towards bias: the trace shows that transient.
    net = snncomp.Network("tr")
    x = net.input("x", 1)
    h = net.lif("h", 1, tau_mem=10e-3, tau_syn=4e-3, bias=0.8, max_spikes=1)
    net.connect(x, h, weight=0.0)
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    grid = np.linspace(0, 30e-3, 31)
    tr = exe.run({"x": Spikes.from_lists([[]], [[]])}, trace_times=grid, trace_populations=["h"]).traces["h"]
    p = dict(KINDS["lif-cuba"], tau_syn=4e-3, bias=0.8)
    v, i = _segment_v(0.0, 0.0, grid, p)
    np.testing.assert_allclose(np.asarray(tr.v)[0, :, 0], v, atol=1e-12)
    np.testing.assert_allclose(np.asarray(tr.i)[0, :, 0], i, atol=1e-12)


def _grad_case(max_spikes: int, kind: str, bias: float, t_refrac: float) -> tuple:
    rng = np.random.default_rng(0)
    net = snncomp.Network("g")
    x = net.input("x", 4)
    if kind == "if":
        h = net.if_("h", 3, max_spikes=max_spikes, bias=bias)
    else:
        h = net.lif("h", 3, tau_mem=10e-3, tau_syn=0.0, max_spikes=max_spikes, bias=bias)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=0.0, max_spikes=max_spikes, t_refrac=t_refrac)
    net.connect(x, h, weight=rng.uniform(0.2, 0.7, (4, 3)), delay=0.5e-3)
    net.connect(h, o, weight=rng.uniform(0.5, 1.5, (3, 2)))
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    t_in = np.sort(rng.uniform(0, 20e-3, 12))
    n_in = jnp.asarray(rng.integers(0, 4, 12)[None], jnp.int32)

    def loss(p: dict, times: jax.Array) -> jax.Array:
        rec = exe.apply(p, {"x": Spikes(times=times, neurons=n_in)})
        total = 0.0
        for pop in ("h", "o"):
            t = rec.spikes[pop].times
            total = total + jnp.sum(jnp.where(jnp.isfinite(t), (t * 1e3) ** 2, 0.0))
        return total

    loss.neurons = n_in  # type: ignore[attr-defined]
    return exe, loss, jnp.asarray(t_in[None])


@pytest.mark.parametrize(
    ("max_spikes", "kind", "bias", "t_refrac"),
    [
        (1, "lif", 0.0, 0.0),
        (1, "lif", 1.3, 0.0),
        (1, "if", 60.0, 0.0),
        (3, "lif", 0.0, 0.0),
        (3, "lif", 1.3, 0.0),
        (3, "if", 60.0, 0.0),
        (3, "lif", 0.3, 1e-3),
    ],
)
def test_gradients_match_finite_differences(max_spikes: int, kind: str, bias: float, t_refrac: float) -> None:
    # max_spikes=1: layer-parallel stages; 3: the event queue. Both jump crossings (a spike at its
    # input's arrival: it moves with that arrival, its weights do not move it) and bias crossings.
    exe, loss, times = _grad_case(max_spikes, kind, bias, t_refrac)
    p = exe.params
    g, g_t = jax.grad(loss, argnums=(0, 1))(p, times)
    assert float(loss(p, times)) > 0
    eps = 1e-7
    for key, w in p["weight"].items():
        w = np.asarray(w)
        fd = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            up, dn = w.copy(), w.copy()
            up[idx] += eps
            dn[idx] -= eps
            lp = loss({**p, "weight": {**p["weight"], key: jnp.asarray(up)}}, times)
            ln = loss({**p, "weight": {**p["weight"], key: jnp.asarray(dn)}}, times)
            fd[idx] = (lp - ln) / (2 * eps)
        np.testing.assert_allclose(np.asarray(g["weight"][key]), fd, rtol=1e-5, atol=1e-5 * (1 + np.abs(fd).max()))
    h = 1e-9
    t0 = np.asarray(times)
    fd_t = np.zeros(t0.shape[1])
    for k in range(t0.shape[1]):
        up, dn = t0.copy(), t0.copy()
        up[0, k] += h
        dn[0, k] -= h
        fd_t[k] = (loss(p, jnp.asarray(up)) - loss(p, jnp.asarray(dn))) / (2 * h)
    np.testing.assert_allclose(np.asarray(g_t)[0], fd_t, rtol=1e-5, atol=1e-5 * np.abs(fd_t).max())
    assert np.abs(fd_t).max() > 0


@pytest.mark.parametrize(("max_spikes", "kind", "bias"), [(1, "lif", 1.3), (3, "lif", 0.0), (3, "if", 60.0)])
def test_hardware_in_the_loop_replay_equals_the_direct_gradient(max_spikes: int, kind: str, bias: float) -> None:
    # Replay (the chip's recorded spikes, EventProp on the model) recovers the trigger flags and the
    # biased current at each spike from the deliveries alone; it must give the simulator's gradient.
    from snncomp.targets.jax_event import replay

    exe, loss, times = _grad_case(max_spikes, kind, bias, 0.0)
    n_in = loss.neurons
    rec = exe.run({"x": Spikes(times=times, neurons=n_in)})
    recorded = {k: (v.times[0], v.neurons[0]) for k, v in rec.spikes.items()}

    def loss_replay(p: dict, t_in: jax.Array) -> jax.Array:
        out = replay(exe.lowered, p, {"x": (t_in[0], n_in[0])}, recorded, T_MAX)
        return sum(jnp.sum(jnp.where(jnp.isfinite(t), (t * 1e3) ** 2, 0.0)) for t in out.values())

    g1, gt1 = jax.grad(loss, argnums=(0, 1))(exe.params, times)
    g2, gt2 = jax.grad(loss_replay, argnums=(0, 1))(exe.params, times)
    assert np.abs(np.asarray(gt1)).max() > 1
    np.testing.assert_allclose(np.asarray(gt2), np.asarray(gt1), rtol=1e-9, atol=1e-6)
    for k in g1["weight"]:
        np.testing.assert_allclose(np.asarray(g2["weight"][k]), np.asarray(g1["weight"][k]), rtol=1e-9, atol=1e-9)


def test_float32_warns_about_an_extreme_time_constant_ratio() -> None:
    from snncomp.errors import PrecisionWarning

    net = snncomp.Network("p")
    x = net.input("x", 1)
    h = net.lif("h", 1, tau_mem=10e-3, tau_syn=10e-9)
    net.connect(x, h, weight=1.0)
    with pytest.warns(PrecisionWarning, match=r"population 'h': tau_syn / tau_mem reaches 1e-06.*float64"):
        snncomp.compile(net, t_max=T_MAX, dtype="float32")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        snncomp.compile(net, t_max=T_MAX, dtype="float64")
        net2 = snncomp.Network("q")
        x2 = net2.input("x", 1)
        net2.connect(x2, net2.lif("h", 1, tau_mem=10e-3, tau_syn=0.0), weight=1.0)
        snncomp.compile(net2, t_max=T_MAX, dtype="float32")


@pytest.mark.parametrize(
    ("max_spikes", "kind", "bias", "t_refrac"),
    [(1, "lif", 1.3, 0.0), (1, "if", 150.0, 0.0), (3, "lif", 0.3, 0.0), (3, "if", 150.0, 0.0), (3, "lif", 1.3, 1e-3)],
)
def test_bias_gradients_match_finite_differences(max_spikes: int, kind: str, bias: float, t_refrac: float) -> None:
    # The bias is a parameter (params["bias"][population], per neuron). EventProp integrates the adjoint
    # against it between events in closed form; a current-based population (tau_syn > 0) is included.
    rng = np.random.default_rng(1)
    net = snncomp.Network("gb")
    x = net.input("x", 4)
    if kind == "if":
        h = net.if_("h", 3, max_spikes=max_spikes, bias=bias, t_refrac=t_refrac)
    else:
        h = net.lif("h", 3, tau_mem=10e-3, tau_syn=0.0, max_spikes=max_spikes, bias=bias, t_refrac=t_refrac)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=4e-3, bias=0.4, max_spikes=max_spikes, t_refrac=t_refrac)
    net.connect(x, h, weight=rng.uniform(0.2, 0.7, (4, 3)), delay=0.5e-3)
    net.connect(h, o, weight=rng.uniform(1.0, 2.5, (3, 2)))
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    t_in = jnp.asarray(np.sort(rng.uniform(0, 20e-3, 12))[None])
    n_in = jnp.asarray(rng.integers(0, 4, 12)[None], jnp.int32)

    def loss(p: dict) -> jax.Array:
        rec = exe.apply(p, {"x": Spikes(times=t_in, neurons=n_in)})
        return sum(
            jnp.sum(jnp.where(jnp.isfinite(rec.spikes[k].times), (rec.spikes[k].times * 1e3) ** 2, 0.0))
            for k in ("h", "o")
        )

    p = exe.params
    assert set(p["bias"]) == {"h", "o"}
    g = jax.grad(loss)(p)
    eps = 1e-6 if kind == "if" else 1e-7
    for pop in ("h", "o"):
        b = np.asarray(p["bias"][pop])
        fd = np.zeros_like(b)
        for k in range(b.size):
            up, dn = b.copy(), b.copy()
            up[k] += eps
            dn[k] -= eps
            fd[k] = (
                loss({**p, "bias": {**p["bias"], pop: jnp.asarray(up)}})
                - loss({**p, "bias": {**p["bias"], pop: jnp.asarray(dn)}})
            ) / (2 * eps)
        # A spike at an input's arrival does not move with the bias (only bias crossings do): 'h' may have
        # a zero gradient; the current-based 'o' never does.
        assert (pop == "h" and kind == "lif") or np.abs(fd).max() > 0  # if neurons cross by their drift
        np.testing.assert_allclose(np.asarray(g["bias"][pop]), fd, rtol=1e-5, atol=1e-6 * (1 + np.abs(fd).max()))


def test_bias_is_a_parameter_group_learnt_on_request_and_checked() -> None:
    from snncomp.errors import InputError
    from snncomp.train import fit

    net = snncomp.Network("fb")
    x = net.input("x", 2)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=4e-3, bias=0.2, max_spikes=1)
    net.connect(x, o, weight=np.array([[3.0, 2.5], [2.0, 3.5]]))
    exe = snncomp.compile(net, t_max=T_MAX, dtype="float64")
    inputs = {"x": Spikes(times=jnp.asarray([[1e-3, 2e-3]] * 4), neurons=jnp.asarray([[0, 1]] * 4))}
    targets = jnp.full((4,), 5e-3)
    assert np.all(np.isfinite(np.asarray(exe.run(inputs).spikes["o"].times)))

    def loss(rec: Any, y: jax.Array) -> jax.Array:
        t = rec.spikes["o"].to_first_spike_times(2)
        return jnp.mean((jnp.where(jnp.isfinite(t), t, T_MAX) - y[:, None]) ** 2) * 1e6

    opt = __import__("optax").sgd(1e-3)
    plain = fit(exe, loss, (inputs, targets), optimizer=opt, epochs=2, batch_size=2, progress=False)
    # By default only the weights move: the bias and the delays are other units, opted into by name.
    np.testing.assert_array_equal(np.asarray(plain.params["bias"]["o"]), np.asarray(exe.params["bias"]["o"]))
    assert not np.array_equal(np.asarray(plain.params["weight"]["x->o"]), np.asarray(exe.params["weight"]["x->o"]))
    learnt = fit(
        exe, loss, (inputs, targets), optimizer=opt, epochs=2, batch_size=2, progress=False, trainable=("bias",)
    )
    assert not np.array_equal(np.asarray(learnt.params["bias"]["o"]), np.asarray(exe.params["bias"]["o"]))
    # A current-based neuron's rest must stay below threshold: refused on the host and inside fit.
    high = {**exe.params, "bias": {"o": jnp.asarray([0.2, 1.0])}}
    with pytest.raises(InputError, match=r"params\['bias'\]\['o'\]: v_leak \+ bias must stay below v_threshold"):
        exe.run(inputs, params=high)
    with pytest.raises(InputError, match=r"fit: params\['bias'\]\['o'\]: v_leak \+ bias must stay below"):
        fit(exe, loss, (inputs, targets), params=high, epochs=1, batch_size=2, progress=False)
    # params written before biases were parameters still run (the compiled biases are used).
    old = {"weight": exe.params["weight"], "delay": exe.params["delay"]}
    np.testing.assert_array_equal(
        np.asarray(exe.run(inputs, params=old).spikes["o"].times), np.asarray(exe.run(inputs).spikes["o"].times)
    )


def test_bss2_mock_refuses_a_changed_bias() -> None:
    # On the chip a bias is the leak potential, set at compile time: new values must be refused, on the
    # host and inside jit, not silently ignored.
    from snncomp.errors import InputError
    from snncomp.train import make_step

    net = snncomp.Network("mb")
    x = net.input("x", 2)
    o = net.lif("o", 2, tau_mem=10e-3, tau_syn=5e-3, bias=0.2, max_spikes=1)
    net.connect(x, o, weight=np.full((2, 2), 0.5))
    exe = snncomp.compile(net, target="bss2-mock", t_max=20e-3)
    inputs = {"x": Spikes(times=jnp.asarray([[1e-3, 2e-3]]), neurons=jnp.asarray([[0, 1]]))}
    exe.run(inputs, params=exe.params)  # the compiled bias is fine
    changed = {**exe.params, "bias": {"o": jnp.asarray([0.2, 0.3], jnp.float32)}}
    with pytest.raises(InputError, match=r"params\['bias'\]\['o'\] differs from the compiled bias"):
        exe.run(inputs, params=changed)

    def loss(rec: Any, _y: jax.Array) -> jax.Array:
        t = rec.spikes["o"].times
        return jnp.mean(jnp.where(jnp.isfinite(t), t, 0.02))

    step = make_step(exe, loss)
    with pytest.raises(InputError, match=r"step: params\['bias'\]\['o'\] differs from the compiled bias"):
        step(changed, step.init(changed), inputs, jnp.zeros(1))
