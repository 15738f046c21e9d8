"""An independent reference simulator for the tests: numpy, float64, a fixed time grid.

It shares no code with ``snncomp.targets.jax_event``. Kinds: ``lif`` and ``li``
with a synaptic current (``tau_syn > 0``) or instantaneous synapses
(``tau_syn = 0``), and ``if``; each with its constant ``bias``.

Between grid points the linear dynamics are advanced exactly, constant drive
included (the textbook two-exponential solution, ``tau_mem == tau_syn`` handled
separately; with ``tau_syn = 0`` one exponential towards ``v_leak + bias``; for
``if`` the straight line ``v + bias * s``). An input or delivery at time ``t_e``
inside a step is added exactly at the next grid point with the effect it has
there (its decayed current and the membrane it produced since ``t_e``; with
instantaneous synapses the decayed jump, for ``if`` the jump itself), so inputs
of one step are summed before the threshold test. A threshold crossing is
detected on the grid and its time found by linear interpolation between the
two grid values. The refractory clamp ends at its exact time; a jump that
arrives while its neuron is clamped is dropped.

Errors are therefore of order ``dt`` for spike times (a crossing caused by a
jump at ``t_e`` is placed somewhere in the step containing ``t_e``; a spike
placed early or late moves its reset and its deliveries by as much, so errors
add up downstream); membrane values between events are exact. What a grid
cannot see is reported: ``grazing[b]`` is True when

* some grid-local maximum of ``v`` came within ``margin`` of threshold (either
  side), or a spike fell within ``2 dt`` of ``t_max``;
* a spiking neuron with jumps (``tau_syn = 0`` or ``if``) received inputs in a
  step where their order inside the step could matter: its free drift alone
  comes within ``margin`` of threshold in that step (did an input come before
  or after that spike, whose reset discards earlier jumps?); inputs at two
  different instants of the step, and its value plus the step's excitatory
  jumps reaches threshold (one may cross before the other arrives); or no
  crossing on the grid although its value plus the jumps of the step's single
  instant reaches threshold (the jump crossed, then decayed below threshold by
  the grid point). "Its value" is the larger of the free membrane at the two
  ends of the step, which bounds it in between (free evolution is monotone);
  the bound is loose by the drift over one step, so these flags hit a fraction
  of order ``dt`` of the jump inputs that come near threshold.

Such samples are excluded from comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snncomp.ir import Network

__all__ = ["ReferenceResult", "simulate"]

CUBA, JUMP, IF = 0, 1, 2  # synaptic current; instantaneous synapses (tau_syn = 0); if (no leak)


@dataclass
class ReferenceResult:
    """Spikes per population and sample: ``spikes[pop][b]`` is a list of ``(time, neuron)``."""

    spikes: dict[str, list[list[tuple[float, int]]]]
    grazing: np.ndarray
    overflow: dict[str, np.ndarray]


def _kernel(s: np.ndarray, tau_m: np.ndarray, tau_s: np.ndarray) -> np.ndarray:
    """Membrane response at time ``s >= 0`` to a unit current ``I(0) = 1`` decaying with ``tau_s`` (from rest)."""
    s = np.asarray(s, np.float64)
    same = np.isclose(tau_m, tau_s, rtol=1e-9, atol=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = tau_s / (tau_s - tau_m) * (np.exp(-s / tau_s) - np.exp(-s / tau_m))
    equal = s / tau_m * np.exp(-s / tau_m)
    return np.where(same, equal, diff)


def _advance(u: np.ndarray, i: np.ndarray, s: np.ndarray, c: dict) -> tuple[np.ndarray, np.ndarray]:
    """Exact free evolution of ``(u = v - v_leak, I)`` over ``s >= 0``, bias included (``c``: columns)."""
    tm, ts, b, mode = c["tau_m"], c["tau_s"], c["bias"], c["mode"]
    em = np.exp(-s / tm)
    u_cuba = b + (u - b) * em + (i - b) * _kernel(s, tm, ts)
    i_cuba = b + (i - b) * np.exp(-s / ts)
    u_new = np.where(mode == CUBA, u_cuba, np.where(mode == JUMP, b + (u - b) * em, u + b * s))
    return u_new, np.where(mode == CUBA, i_cuba, 0.0)


def _response(o: np.ndarray, c: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(du, dI)`` at ``o >= 0`` after a unit input (a linear effect: the bias does not enter)."""
    tm, ts, mode = c["tau_m"], c["tau_s"], c["mode"]
    du = np.where(mode == CUBA, _kernel(o, tm, ts), np.where(mode == JUMP, np.exp(-o / tm), 1.0))
    return du, np.where(mode == CUBA, np.exp(-o / ts), 0.0)


def _current_back(i: np.ndarray, s: np.ndarray, c: dict) -> np.ndarray:
    """The current ``s`` earlier than a current ``i`` (free evolution run backwards)."""
    return np.where(c["mode"] == CUBA, c["bias"] + (i - c["bias"]) * np.exp(s / c["tau_s"]), 0.0)


def _sub(c: dict, idx: object) -> dict:
    return {k: v[idx] for k, v in c.items()}


def _columns(net: Network) -> tuple[list, dict[str, slice], dict[str, np.ndarray]]:
    pops = [n for n in net.nodes if n.kind != "input"]
    sl: dict[str, slice] = {}
    off = 0
    for p in pops:
        sl[p.name] = slice(off, off + p.size)
        off += p.size
    names = ("tau_m", "tau_s", "thr", "leak", "reset", "refrac", "max", "lif", "bias", "mode")
    cols: dict[str, list] = {k: [] for k in names}
    for p in pops:
        b = lambda x, p=p: np.broadcast_to(np.asarray(x, np.float64), (p.size,))  # noqa: E731
        if p.kind == "if":
            # No leak, no current: the time constants are placeholders the "if" branches never use.
            mode = IF
            cols["tau_m"].append(np.ones(p.size))
            cols["tau_s"].append(np.ones(p.size))
            cols["leak"].append(np.zeros(p.size))
        else:
            mode = JUMP if bool(np.all(np.asarray(p.tau_syn) == 0)) else CUBA
            cols["tau_m"].append(b(p.tau_mem))
            cols["tau_s"].append(b(p.tau_syn) if mode == CUBA else np.ones(p.size))
            cols["leak"].append(b(p.v_leak))
        cols["mode"].append(np.full(p.size, mode))
        cols["bias"].append(b(getattr(p, "bias", 0.0)))
        if p.kind in ("lif", "if"):
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
    # Edges that carry spikes (li populations never spike; inputs are handled up front).
    out_edges: dict[str, list[tuple[np.ndarray, float, slice]]] = {}
    for e in net.edges:
        w = np.where(e.mask, e.weight, 0.0) if e.mask is not None else np.asarray(e.weight, np.float64)
        out_edges.setdefault(e.source, []).append((np.asarray(w, np.float64), float(e.delay), sl[e.target]))

    # step -> deliveries arriving inside it: (sample index [k], target slice, weight rows [k, m], time [k])
    pending: dict[int, list[tuple[np.ndarray, slice, np.ndarray, np.ndarray]]] = {}
    mode = c["mode"]
    jumps = mode != CUBA  # the membrane jumps by the weight
    spiking_jumps = c["lif"] & jumps
    any_jumps = bool(spiking_jumps.any())

    def schedule(b_idx: np.ndarray, src: np.ndarray, t_s: np.ndarray, edges: list) -> None:
        for w, delay, tgt in edges:
            t_e = t_s + delay
            keep = t_e < t_max
            if not keep.any():
                continue
            m = np.maximum(np.ceil(t_e[keep] / dt - 1e-12).astype(int), 1)
            for step in np.unique(m):
                sel = m == step
                pending.setdefault(int(step), []).append((b_idx[keep][sel], tgt, w[src[keep][sel]], t_e[keep][sel]))

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
    # One grid step of free evolution: u <- a_uu u + a_ui I + c_u, I <- a_ii I + c_i (exact, bias included).
    tau_m, tau_s, bias = c["tau_m"], c["tau_s"], c["bias"]
    em, es, k_dt = np.exp(-dt / tau_m), np.exp(-dt / tau_s), _kernel(dt, tau_m, tau_s)
    a_uu = np.where(mode == IF, 1.0, em)
    a_ui = np.where(mode == CUBA, k_dt, 0.0)
    a_ii = np.where(mode == CUBA, es, 0.0)
    c_u = np.select([mode == CUBA, mode == JUMP], [bias * (1.0 - em - k_dt), bias * (1.0 - em)], bias * dt)
    c_i = np.where(mode == CUBA, bias * (1.0 - es), 0.0)
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
    theta_low = np.where(c["lif"], theta - np.where(c["lif"], limit, 0.0), np.inf)  # threshold less the margin
    # Per step, for neurons with jumps: first and last instant of an input, sum of the jumps, of the excitatory ones.
    t_first = np.full((batch, n), np.inf)
    t_last = np.full((batch, n), -np.inf)
    jump_sum = np.zeros((batch, n))
    excite = np.zeros((batch, n))

    def effects(b_idx: np.ndarray, tgt: slice, rows: np.ndarray, t_e: np.ndarray, t1: float) -> tuple:
        """Inputs at ``t_e`` seen at ``t1``: (du, dI) [k, m]; a jump onto a clamped neuron is dropped."""
        du, di = _response((t1 - t_e)[:, None], _sub(c, tgt))
        du, di = rows * du, rows * di
        if jumps[tgt].any():
            lost = jumps[tgt][None, :] & (t_e[:, None] < ref_end[b_idx][:, tgt])
            du = np.where(lost, 0.0, du)
            if any_jumps:
                kk, mm = np.nonzero(spiking_jumps[tgt][None, :] & ~lost & (rows != 0))
                bb, jj = b_idx[kk], tgt.start + mm
                np.minimum.at(t_first, (bb, jj), t_e[kk])
                np.maximum.at(t_last, (bb, jj), t_e[kk])
                np.add.at(jump_sum, (bb, jj), rows[kk, mm])
                np.add.at(excite, (bb, jj), np.maximum(rows[kk, mm], 0.0))
        return du, di

    for step in range(1, steps + 1):
        t0, t1 = (step - 1) * dt, step * dt
        i_end = a_ii * cur + c_i
        u_new = a_uu * u + a_ui * cur + c_u
        # Refractory clamp: held at reset until ref_end, then free from reset with I(ref_end).
        held = ref_end >= t1
        ending = (ref_end > t0) & ~held
        if ending.any():
            rest = np.where(ending, t1 - ref_end, 0.0)
            u_free, _ = _advance(u_reset, _current_back(i_end, rest, c), rest, c)
            u_new = np.where(ending, u_free, u_new)
        u_new = np.where(held, u_reset, u_new)
        u_prev, u, cur = u, u_new, i_end
        u_start, u_drift, count_start = u_prev, u, count.copy()
        if any_jumps:
            t_first.fill(np.inf)
            t_last.fill(-np.inf)
            jump_sum.fill(0.0)
            excite.fill(0.0)
        entries = pending.pop(step, None)
        if entries is not None:
            du_sum, di_sum = np.zeros((batch, n)), np.zeros((batch, n))
            for b_idx, tgt, rows, t_e in entries:
                du, di = effects(b_idx, tgt, rows, t_e, t1)
                np.add.at(du_sum[:, tgt], b_idx, du)
                np.add.at(di_sum[:, tgt], b_idx, di)
            u = u + np.where(held, 0.0, du_sum)
            cur = cur + di_sum
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
            rest = np.maximum(t1 - ref_end[b_idx, j_idx], 0.0)
            # After the reset: held, or free from reset for the rest of the step (earlier jumps are gone).
            cj = _sub(c, j_idx)
            u_free, _ = _advance(u_reset[j_idx], _current_back(cur[b_idx, j_idx], rest, cj), rest, cj)
            u[b_idx, j_idx] = np.where(t1 - ref_end[b_idx, j_idx] > 0, u_free, u_reset[j_idx])
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
                        du, di = effects(b_idx[sel][now], tgt, w[local[j_idx[sel][now]]], t_e[now], t1)
                        np.add.at(u[:, tgt], b_idx[sel][now], du)
                        np.add.at(cur[:, tgt], b_idx[sel][now], di)
                    later = ~now
                    if later.any():
                        schedule(b_idx[sel][later], local[j_idx[sel][later]], t_s[sel][later], [(w, delay, tgt)])
        if any_jumps:
            # Jumps whose order inside the step the grid cannot resolve (see the module docstring).
            # Before the inputs the free membrane lies between u_start and u_drift (it is monotone); at one
            # instant the jumps sum, at several each excitatory one may come first.
            got = t_last > -np.inf
            several = t_last > t_first
            top = np.maximum(u_start, u_drift) + np.where(several, excite, jump_sum)
            near = top >= theta_low
            unresolved = (u_drift >= theta_low) | (several & near) | ((count == count_start) & near)
            grazing |= (spiking_jumps & got & (count_start < c["max"]) & unresolved).any(axis=1)
        # Near-miss detection: a grid-local maximum of u within the margin of threshold.
        peak = (prev1 > prev2) & (prev1 >= u) & (np.abs(prev1 - theta) < limit) & (c["lif"] & (count < c["max"]))
        grazing |= peak.any(axis=1)
        prev2, prev1 = prev1, u
    return ReferenceResult(spikes=spikes, grazing=grazing, overflow=overflow)
