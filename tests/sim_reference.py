"""An independent reference simulator for the tests: numpy, float64, a fixed time grid.

It shares no code with ``snncomp.targets.jax_event``. Between grid points the
linear dynamics are advanced exactly (the textbook two-exponential solution;
``tau_mem == tau_syn`` handled separately); an input or delivery at time
``t_e`` inside a step is added exactly at the next grid point (its decayed
current and the membrane it produced since ``t_e``); a threshold crossing is
detected on the grid and its time found by linear interpolation between the
two grid values. The refractory clamp ends at its exact time.

Errors are therefore of order ``dt`` for spike times; everything else is exact.
What a grid cannot see, a membrane peak that touches the threshold between two
grid points, is reported: ``grazing[b]`` is True when some grid-local maximum
of ``v`` came within ``margin`` of threshold (either side), or a spike fell
within ``2 dt`` of ``t_max``. Such samples are excluded from comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncomp.ir import Network

__all__ = ["ReferenceResult", "simulate"]


@dataclass
class ReferenceResult:
    """Spikes per population and sample: ``spikes[pop][b]`` is a list of ``(time, neuron)``."""

    spikes: dict[str, list[list[tuple[float, int]]]]
    grazing: np.ndarray
    overflow: dict[str, np.ndarray]


def _kernel(s: np.ndarray, tau_m: np.ndarray, tau_s: np.ndarray) -> np.ndarray:
    """Membrane response at time ``s >= 0`` to a unit current step at 0 (from rest)."""
    s = np.asarray(s, np.float64)
    same = np.isclose(tau_m, tau_s, rtol=1e-9, atol=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = tau_s / (tau_s - tau_m) * (np.exp(-s / tau_s) - np.exp(-s / tau_m))
    equal = s / tau_m * np.exp(-s / tau_m)
    return np.where(same, equal, diff)


def _columns(net: Network) -> tuple[list, dict[str, slice], dict[str, np.ndarray]]:
    pops = [n for n in net.nodes if n.kind != "input"]
    sl: dict[str, slice] = {}
    off = 0
    for p in pops:
        sl[p.name] = slice(off, off + p.size)
        off += p.size
    cols: dict[str, list] = {k: [] for k in ("tau_m", "tau_s", "thr", "leak", "reset", "refrac", "max", "lif")}
    for p in pops:
        b = lambda x, p=p: np.broadcast_to(np.asarray(x, np.float64), (p.size,))  # noqa: E731
        cols["tau_m"].append(b(p.tau_mem))
        cols["tau_s"].append(b(p.tau_syn))
        cols["leak"].append(b(p.v_leak))
        if p.kind == "lif":
            cols["thr"].append(b(p.v_threshold))
            cols["reset"].append(b(p.v_reset))
            cols["refrac"].append(b(p.t_refrac))
            cols["max"].append(np.full(p.size, p.max_spikes if p.max_spikes is not None else 1 << 30))
            cols["lif"].append(np.ones(p.size, bool))
        else:
            cols["thr"].append(np.full(p.size, np.inf))
            cols["reset"].append(b(p.v_leak))
            cols["refrac"].append(np.zeros(p.size))
            cols["max"].append(np.zeros(p.size))
            cols["lif"].append(np.zeros(p.size, bool))
    return pops, sl, {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def simulate(
    net: Network,
    inputs: dict[str, tuple[np.ndarray, np.ndarray]],
    t_max: float,
    dt: float,
    *,
    buffers: dict[str, int] | None = None,
    margin: float = 1e-6,
) -> ReferenceResult:
    """Simulate a batch: ``inputs[name] = (times [B, E], neurons [B, E])`` (padding: neuron -1).

    ``buffers`` (spikes per sample per population) mirror the compiled buffer
    sizes: a spike beyond it sets ``overflow`` and ends that sample.
    """
    pops, sl, c = _columns(net)
    n = int(sum(p.size for p in pops))
    batch = next(iter(inputs.values()))[0].shape[0] if inputs else 1
    steps = int(np.ceil(t_max / dt))
    keys = net.edge_keys()
    # Edges that carry spikes (li populations never spike; inputs are handled up front).
    out_edges: dict[str, list[tuple[np.ndarray, float, slice]]] = {}
    for key, e in zip(keys, net.edges):
        w = np.where(e.mask, e.weight, 0.0) if e.mask is not None else np.asarray(e.weight, np.float64)
        out_edges.setdefault(e.source, []).append((np.asarray(w, np.float64), float(e.delay), sl[e.target]))
        del key

    pending: dict[int, list[np.ndarray]] = {}  # step -> [dU, dI], each [B, n]
    tau_m, tau_s = c["tau_m"], c["tau_s"]

    def deliver(step_time_index: int, b_idx: np.ndarray, rows: np.ndarray, t_e: np.ndarray, tgt: slice) -> None:
        """Add deliveries (one per entry of b_idx) arriving at t_e to the state at grid point step_time_index."""
        o = step_time_index * dt - t_e
        ts, tm = tau_s[tgt], tau_m[tgt]
        du = rows * _kernel(o[:, None], tm[None, :], ts[None, :])
        di = rows * np.exp(-o[:, None] / ts[None, :])
        slot = pending.setdefault(step_time_index, [np.zeros((batch, n)), np.zeros((batch, n))])
        np.add.at(slot[0][:, tgt], b_idx, du)
        np.add.at(slot[1][:, tgt], b_idx, di)

    def schedule(b_idx: np.ndarray, src: np.ndarray, t_s: np.ndarray, edges: list) -> None:
        for w, delay, tgt in edges:
            t_e = t_s + delay
            keep = t_e < t_max
            if not keep.any():
                continue
            m = np.maximum(np.ceil(t_e[keep] / dt - 1e-12).astype(int), 1)
            for step in np.unique(m):
                sel = m == step
                deliver(int(step), b_idx[keep][sel], w[src[keep][sel]], t_e[keep][sel], tgt)

    for name, (times, neurons) in inputs.items():
        times = np.asarray(times, np.float64)
        neurons = np.asarray(neurons)
        real = (neurons >= 0) & (times < t_max)
        b_idx, e_idx = np.nonzero(real)
        schedule(b_idx, neurons[b_idx, e_idx], times[b_idx, e_idx], out_edges.get(name, []))

    u = np.zeros((batch, n))  # v - v_leak
    cur = np.zeros((batch, n))
    ref_end = np.full((batch, n), -np.inf)
    count = np.zeros((batch, n), int)
    theta = c["thr"] - c["leak"]
    u_reset = c["reset"] - c["leak"]
    p_uu = np.exp(-dt / tau_m)
    p_ui = _kernel(dt, tau_m, tau_s)
    p_ii = np.exp(-dt / tau_s)
    pop_of = np.concatenate([np.full(p.size, k) for k, p in enumerate(pops)]) if pops else np.zeros(0, int)
    local = np.concatenate([np.arange(p.size) for p in pops]) if pops else np.zeros(0, int)
    bufs = np.array([(buffers or {}).get(p.name, 1 << 30) for p in pops])
    recorded = np.zeros((batch, len(pops)), int)
    spikes: dict[str, list[list[tuple[float, int]]]] = {p.name: [[] for _ in range(batch)] for p in pops}
    overflow = {p.name: np.zeros(batch, bool) for p in pops}
    stopped = np.zeros(batch, bool)
    grazing = np.zeros(batch, bool)
    prev2 = np.full((batch, n), -np.inf)
    prev1 = np.zeros((batch, n))
    limit = margin * np.maximum(1.0, np.abs(theta))

    for step in range(1, steps + 1):
        t0, t1 = (step - 1) * dt, step * dt
        i_end = cur * p_ii
        u_new = p_uu * u + p_ui * cur
        # Refractory clamp: held at reset until ref_end, then free from reset with I(ref_end).
        held = ref_end >= t1
        ending = (ref_end > t0) & ~held
        if ending.any():
            rest = np.where(ending, t1 - ref_end, 0.0)
            i_ref = i_end * np.exp(rest / tau_s)
            u_free = u_reset * np.exp(-rest / tau_m) + i_ref * _kernel(rest, tau_m, tau_s)
            u_new = np.where(ending, u_free, u_new)
        u_new = np.where(held, u_reset, u_new)
        u_prev, u, cur = u, u_new, i_end
        slot = pending.pop(step, None)
        if slot is not None:
            u = u + np.where(held, 0.0, slot[0])
            cur = cur + slot[1]
        u = np.where(stopped[:, None], u_prev, u)
        # Cascade: spikes inside this step can deliver (zero or short delay) within the same step.
        while True:
            can = c["lif"][None, :] & (count < c["max"][None, :])
            cross = can & (u >= theta) & (u_prev < theta) & ~stopped[:, None]
            if not cross.any():
                break
            b_idx, j_idx = np.nonzero(cross)
            frac = (theta[j_idx] - u_prev[b_idx, j_idx]) / (u[b_idx, j_idx] - u_prev[b_idx, j_idx])
            t_s = t0 + dt * np.clip(frac, 0.0, 1.0)
            order = np.lexsort((j_idx, t_s, b_idx))
            b_idx, j_idx, t_s = b_idx[order], j_idx[order], t_s[order]
            fired = np.zeros(b_idx.size, bool)
            for k in range(b_idx.size):
                b, j = b_idx[k], j_idx[k]
                if stopped[b] or t_s[k] >= t_max:
                    continue
                p = pop_of[j]
                if recorded[b, p] >= bufs[p]:
                    overflow[pops[p].name][b] = True
                    stopped[b] = True
                    continue
                recorded[b, p] += 1
                spikes[pops[p].name][b].append((float(t_s[k]), int(local[j])))
                fired[k] = True
                if t_max - t_s[k] < 2 * dt:
                    grazing[b] = True
            b_idx, j_idx, t_s = b_idx[fired], j_idx[fired], t_s[fired]
            if b_idx.size == 0:
                break
            count[b_idx, j_idx] += 1
            ref_end[b_idx, j_idx] = t_s + c["refrac"][j_idx]
            rest = t1 - ref_end[b_idx, j_idx]
            # After the reset: held, or free from reset for the rest of the step.
            i_ref = cur[b_idx, j_idx] * np.exp(np.maximum(rest, 0.0) / tau_s[j_idx])
            u_after = np.where(
                rest > 0,
                u_reset[j_idx] * np.exp(-np.maximum(rest, 0) / tau_m[j_idx])
                + i_ref * _kernel(np.maximum(rest, 0.0), tau_m[j_idx], tau_s[j_idx]),
                u_reset[j_idx],
            )
            u[b_idx, j_idx] = u_after
            u_prev = u_prev.copy()
            u_prev[b_idx, j_idx] = u_reset[j_idx]  # a second crossing needs a new rise from reset
            for k in range(len(pops)):
                sel = pop_of[j_idx] == k
                if not sel.any():
                    continue
                edges = out_edges.get(pops[k].name, [])
                for w, delay, tgt in edges:
                    t_e = t_s[sel] + delay
                    now = t_e <= t1
                    if now.any():
                        o = t1 - t_e[now]
                        rows = w[local[j_idx[sel][now]]]
                        ts, tm = tau_s[tgt], tau_m[tgt]
                        np.add.at(u[:, tgt], b_idx[sel][now], rows * _kernel(o[:, None], tm[None], ts[None]))
                        np.add.at(cur[:, tgt], b_idx[sel][now], rows * np.exp(-o[:, None] / ts[None]))
                    later = ~now
                    if later.any():
                        schedule(b_idx[sel][later], local[j_idx[sel][later]], t_s[sel][later], [(w, delay, tgt)])
        # Near-miss detection: a grid-local maximum of u within the margin of threshold.
        peak = (prev1 > prev2) & (prev1 >= u) & (np.abs(prev1 - theta) < limit) & (c["lif"] & (count < c["max"]))
        grazing |= peak.any(axis=1)
        prev2, prev1 = prev1, u
    return ReferenceResult(spikes=spikes, grazing=grazing, overflow=overflow)
