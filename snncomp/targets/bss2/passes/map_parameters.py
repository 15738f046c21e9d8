"""``map-parameters``: model time and voltages -> hardware time and CADC LSB, checked against the calibration ranges."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ....ir import SPIKING_KINDS
from ....passes import Pass, PassContext, annotate_graph, annotate_node, register
from .._annotations import HwParams, ParameterMap, _si, _vals
from .._problem import chip_of
from ..chip import ChipSpec
from ..errors import ParameterError, Violation

__all__ = ["MapParameters", "refractory_clocks"]


def refractory_clocks(chip: ChipSpec, times: np.ndarray) -> tuple[int, int]:
    """(fast, slow) clock scales: the finest clocks whose 8-bit counter still reaches the shortest and longest time."""
    top = (1 << chip.refractory_counter_bits) - 1
    if len(times) == 0:
        return (0, 0)

    def finest(t: float) -> int:
        for s in range(chip.refractory_clock_scales):
            if t <= top / chip.refractory_clock(s):
                return s
        return chip.refractory_clock_scales - 1

    return (finest(float(times.min())), finest(float(times.max())))


def _quantize_refractory(chip: ChipSpec, t: np.ndarray, clocks: tuple[int, int]) -> tuple[np.ndarray, ...]:
    top = (1 << chip.refractory_counter_bits) - 1
    fast_f, slow_f = chip.refractory_clock(clocks[0]), chip.refractory_clock(clocks[1])
    use_slow = t > top / fast_f
    freq = np.where(use_slow, slow_f, fast_f)
    counter = np.clip(np.floor(t * freq + 0.5), 1, top).astype(np.int64)
    return counter / freq, use_slow.astype(np.int64), counter


def _psp_peak(ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak of ``exp(-t/tau_mem) - exp(-t/tau_syn)`` and its time in ``tau_mem`` units (``ratio = tau_syn/tau_mem``)."""
    t = ratio * np.log(1.0 / ratio) / (1.0 - ratio)
    return np.exp(-t) - np.exp(-t / ratio), t


def _instantaneous_note(name: str, kind: str, ts: float, tau_m: np.ndarray, speedup: float, bound: float) -> str:
    """The remark for instantaneous synapses (``tau_syn = 0``, ``if``) realised by the chip's shortest ``tau_syn``."""
    ratio = ts / tau_m
    k = (tau_m - ts) / ts
    peak, t_peak = _psp_peak(ratio)
    what = "instantaneous synapses ('if')" if kind == "if" else "tau_syn=0 (instantaneous synapses)"
    return (
        f"{name}: {what} approximated: the chip's synapses are current-based only, so it gets the chip's smallest "
        f"synaptic time constant tau_syn={_si(ts)} ({_si(ts * speedup)} model time), tau_syn/tau_mem={_vals(ratio)}; "
        f"weights into it are scaled by (tau_mem - tau_syn)/tau_syn={_vals(k)} so that an input's voltage kick "
        f"w*(exp(-t/tau_mem) - exp(-t/tau_syn)) matches the model's jump w after its rise (peak {_vals(peak)}*w "
        f"after {_vals(t_peak * tau_m * speedup, time=True)} model time); one synapse then reaches "
        f"|w| <= {_vals(bound / k)} model units at the default quantize scale"
    )


def _bias_note(name: str, rest: np.ndarray, v_offset: float, v_scale: float, instantaneous: bool) -> str:
    """The remark for a ``bias`` realised as a shift of the leak potential."""
    head = (
        f"{name}: bias mapped to a shift of the leak potential, v_leak + bias = {_vals(rest)} model "
        f"({_vals(v_offset + v_scale * rest)} LSB)"
    )
    if instantaneous:
        return head + (
            ": exact for the membrane equation with instantaneous synapses (tau_mem dv/dt = -(v - v_leak - bias)), "
            "except at the start: the chip's membrane rests at the shifted leak from t = 0, where the model starts "
            "at v_leak and relaxes to v_leak + bias over tau_mem"
        )
    return head + (
        ": an approximation with a synaptic current (tau_syn > 0): the model's bias enters through I, which "
        "relaxes from 0 to bias over tau_syn, and v follows over tau_mem; the chip's shifted leak has no such "
        "transient: the membrane rests at v_leak + bias from t = 0"
    )


def _interval_hint(lo: float, hi: float, name: str) -> str:
    if lo > hi:
        return f"no single {name} fits every value (their ratio exceeds the chip's range)"
    if lo <= 0:
        return f"{name} <= {hi:.4g} fits every value"
    return f"{name} in [{lo:.4g}, {hi:.4g}] fits every value"


class _RangeCheck:
    """Collects out-of-range parameters and the speedups / v_scales that would fit every value."""

    def __init__(self, speedup: float, v_offset: float, v_scale: float):
        self.speedup, self.v_offset, self.v_scale = speedup, v_offset, v_scale
        self.time_lo, self.time_hi = 0.0, math.inf
        self.volt_lo, self.volt_hi = 0.0, math.inf
        self.timing: list[Violation] = []
        self.volts: list[Violation] = []

    @staticmethod
    def _violation(pop: str, field: str, i: int, per_neuron: bool, value: str, allowed: str) -> Violation:
        where = f" (neuron {i})" if per_neuron else ""
        return Violation(f"population '{pop}' {field}{where}", detail=f"{value}, allowed {allowed}", check=22)

    def time(
        self, pop: str, field: str, per_neuron: bool, model: np.ndarray, rng: tuple[float, float], lower: bool
    ) -> np.ndarray:
        """Hardware times; below ``rng[0]`` is only an error when ``lower``."""
        hw = model / self.speedup
        lo, hi = rng
        bad = (hw > hi) | ((hw < lo) if lower else False)
        self.time_lo = max(self.time_lo, float((model / hi).max()))
        if lower:
            self.time_hi = min(self.time_hi, float((model / lo).min()))
        if bad.any():
            i = int(np.argmax(bad))
            value = f"{_si(model[i])} model = {_si(hw[i])} on chip"
            self.timing.append(self._violation(pop, field, i, per_neuron, value, f"[{_si(lo)}, {_si(hi)}]"))
        return hw

    def volt(self, pop: str, field: str, per_neuron: bool, model: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
        """Potentials in CADC LSB."""
        hw = self.v_offset + self.v_scale * model
        lo, hi = rng
        off = self.v_offset
        for v in np.unique(model):
            if v > 0:
                self.volt_lo, self.volt_hi = max(self.volt_lo, (lo - off) / v), min(self.volt_hi, (hi - off) / v)
            elif v < 0:
                self.volt_lo, self.volt_hi = max(self.volt_lo, (off - hi) / -v), min(self.volt_hi, (off - lo) / -v)
            elif not lo <= off <= hi:
                self.volt_hi = -1.0
        bad = (hw < lo) | (hw > hi)
        if bad.any():
            i = int(np.argmax(bad))
            value = f"{model[i]:g} model = {hw[i]:.4g} LSB"
            self.volts.append(self._violation(pop, field, i, per_neuron, value, f"[{lo:g}, {hi:g}] LSB"))
        return hw


@register
@dataclass(frozen=True)
class MapParameters(Pass):
    """Map every neuron parameter onto the chip's calibration targets.

    Time: ``t_hw = t_model / speedup`` (default: the chip's 1000, biological ms -> hardware us).
    Voltage: ``V_lsb = v_offset + v_scale * V_model`` (default ``80 + 70 V``: model 0 -> 80 LSB, 1 -> 150
    LSB as in jaxsnn's Yin-Yang calibration). ``tau_syn`` sets both the excitatory and the inhibitory
    synaptic time constant. ``t_refrac`` below the chip's minimum (40 ns; 0 included) is raised to it; the
    refractory counter then quantizes it (8-bit counter on a ``fast`` or ``slow`` clock). ``max_spikes=1``
    populations get the longest refractory period (32 us), which keeps them silent for the rest of a run
    up to that long. ``li`` readouts get their threshold comparator switched off.

    Every value outside the chip's range is reported at once, with the population, parameter, neuron,
    value, allowed range and the ``speedup`` / ``v_scale`` that would fit. Projections with a delay fail:
    the chip has no programmable synaptic delay. ``runtime`` (model seconds, optional) is checked against
    the 2**32-cycle experiment timer.
    """

    name = "map-parameters"
    ensures = ("hw-parameters",)

    speedup: float | None = None
    v_offset: float | None = None
    v_scale: float | None = None
    runtime: float | None = None

    def run(self, graph: nx.MultiDiGraph, ctx: PassContext) -> nx.MultiDiGraph:
        g = graph.copy()
        chip = chip_of(g, ctx.options)
        speedup = chip.speedup if self.speedup is None else self.speedup
        v_offset = chip.v_offset if self.v_offset is None else self.v_offset
        v_scale = chip.v_scale if self.v_scale is None else self.v_scale
        problems: list[Violation] = []
        if not (speedup > 0 and math.isfinite(speedup)):
            raise ParameterError("invalid map-parameters option", [Violation(f"speedup={speedup}", hint="> 0")])
        if not (v_scale > 0 and math.isfinite(v_scale)):
            raise ParameterError("invalid map-parameters option", [Violation(f"v_scale={v_scale}", hint="> 0")])

        for _u, _v, key, data in g.edges(keys=True, data=True):
            if data["ir"].delay > 0:
                problems.append(
                    Violation(
                        f"projection '{key}': delay {data['ir'].delay!r}s",
                        detail="BrainScaleS-2 has no programmable synaptic delay",
                        hint="use delay 0 for the bss2 target",
                    )
                )

        # Calibration biases of the chip description itself (check 22).
        for field_name in ("membrane_capacitance", "i_synin_gm", "synapse_dac_bias"):
            lo, hi = getattr(chip, f"{field_name}_range")
            val = getattr(chip, field_name)
            if not lo <= val <= hi:
                problems.append(Violation(f"chip {field_name}={val:g}", detail=f"allowed [{lo:g}, {hi:g}]", check=22))

        check = _RangeCheck(speedup, v_offset, v_scale)
        pending: dict[str, dict[str, np.ndarray]] = {}
        notes: list[str] = []  # remarks on approximations, made once the mapping succeeded
        w_scale = chip.weight_scale * v_scale / chip.weight_scale_reference  # quantize's default scale
        for name, data in g.nodes(data=True):
            node = data["ir"]
            if node.kind == "input":
                continue
            size = node.size
            per_neuron = {f for f in type(node).model_fields if isinstance(getattr(node, f), np.ndarray)}
            full = {
                f: np.broadcast_to(np.asarray(getattr(node, f), np.float64), (size,))
                for f in ("tau_mem", "tau_syn", "v_leak", "v_reset", "v_threshold", "t_refrac", "bias")
                if hasattr(node, f)
            }

            def check_time(
                field: str,
                model: np.ndarray,
                rng: tuple[float, float],
                lower: bool = True,
                _name: str = name,
                _pn: set[str] = per_neuron,
            ) -> np.ndarray:
                return check.time(_name, field, field in _pn, model, rng, lower)

            def check_volt(
                field: str, model: np.ndarray, rng: tuple[float, float], _name: str = name, _pn: set[str] = per_neuron
            ) -> np.ndarray:
                return check.volt(_name, field, field in _pn, model, rng)

            bias = full.get("bias", np.zeros(size))
            biased = bool(np.any(bias != 0))
            spiking = node.kind in SPIKING_KINDS
            instantaneous = bool(getattr(node, "instantaneous", False))
            out: dict[str, np.ndarray] = {}
            if node.kind == "if":
                if biased:
                    i = int(np.argmax(bias != 0))
                    where = f" (neuron {i})" if "bias" in per_neuron else ""
                    problems.append(
                        Violation(
                            f"population '{name}' bias{where}",
                            detail=f"bias={float(bias[i])!r}: an 'if' neuron's constant drift dv/dt = bias has no "
                            "mapping on the chip: its membrane always leaks towards a potential, so it cannot hold a "
                            "constant slope, and BSS2_SPEC.md documents no constant current source",
                            hint="use bias=0 for 'if' on bss2, or a 'lif' whose bias shifts its rest (v_leak + bias)",
                        )
                    )
                    continue
                longest = chip.tau_mem_range[1]
                out["tau_mem"] = np.full(size, longest)
                out["v_leak"] = check_volt("v_leak", np.zeros(size), chip.v_leak_range)
                notes.append(
                    f"{name}: 'if' neurons do not leak, the chip's membrane always does: mapped to the chip's largest "
                    f"membrane time constant tau_mem={_si(longest)} ({_si(longest * speedup)} model time) with "
                    "v_leak=0 (the model's start), so between inputs v decays towards 0 with that time constant "
                    "instead of holding (the leak is not zero)"
                )
            else:
                out["tau_mem"] = check_time("tau_mem", full["tau_mem"], chip.tau_mem_range)
                rest = full["v_leak"] + bias
                if biased:
                    out["v_leak"] = check.volt(
                        name, "v_leak + bias", bool(per_neuron & {"v_leak", "bias"}), rest, chip.v_leak_range
                    )
                    notes.append(_bias_note(name, rest, v_offset, v_scale, instantaneous))
                else:
                    out["v_leak"] = check_volt("v_leak", full["v_leak"], chip.v_leak_range)
                if node.kind == "lif" and instantaneous:
                    above = rest >= full["v_threshold"]
                    if above.any():
                        i = int(np.argmax(above))
                        pn = bool(per_neuron & {"v_leak", "bias", "v_threshold"})
                        problems.append(
                            Violation(
                                f"population '{name}' v_leak + bias" + (f" (neuron {i})" if pn else ""),
                                detail=f"{float(rest[i])!r} >= v_threshold={float(full['v_threshold'][i])!r}: a "
                                "tonically firing neuron has no mapping on this target: its instantaneous synapses "
                                "become the chip's current-based ones (tau_syn > 0), and such a neuron needs its "
                                "rest below threshold",
                                hint="keep v_leak + bias < v_threshold, or drive the neuron with input spikes",
                            )
                        )
            if instantaneous:
                ts = chip.tau_syn_range[0]
                out["tau_syn"] = np.full(size, ts)
                tau_m = out["tau_mem"]
                if (tau_m <= ts).any():
                    i = int(np.argmax(tau_m <= ts))
                    problems.append(
                        Violation(
                            f"population '{name}' tau_mem" + (f" (neuron {i})" if "tau_mem" in per_neuron else ""),
                            detail=f"{_si(float(tau_m[i]))} on chip is not above the smallest synaptic time constant "
                            f"{_si(ts)} that stands in for its instantaneous synapses",
                            hint="a longer tau_mem (or a smaller map-parameters{speedup})",
                        )
                    )
                else:
                    out["weight_factor"] = (tau_m - ts) / ts
                    notes.append(_instantaneous_note(name, node.kind, ts, tau_m, speedup, chip.weight_max / w_scale))
            else:
                out["tau_syn"] = check_time("tau_syn", full["tau_syn"], chip.tau_syn_range)
            if spiking:
                out["v_reset"] = check_volt("v_reset", full["v_reset"], chip.v_reset_range)
                out["v_threshold"] = check_volt("v_threshold", full["v_threshold"], chip.v_threshold_range)
                if node.max_spikes == 1:
                    out["refractory"] = np.full(size, chip.refractory_range[1])
                else:
                    t = check_time("t_refrac", full["t_refrac"], chip.refractory_range, lower=False)
                    low = t < chip.refractory_range[0]
                    if low.any():
                        ctx.remark(
                            f"{name}: t_refrac of {int(low.sum())} neuron(s) raised to the chip's minimum "
                            f"{_si(chip.refractory_range[0])} ({_si(chip.refractory_range[0] * speedup)} model time)"
                        )
                    out["refractory"] = np.maximum(t, chip.refractory_range[0])
            else:
                out["v_reset"] = out["v_leak"]
                out["v_threshold"] = np.full(size, chip.v_threshold_range[1])
                out["refractory"] = np.zeros(size)
            pending[name] = out

        if check.timing:
            hint = _interval_hint(check.time_lo, check.time_hi, "map-parameters{speedup}")
            problems += [dataclasses.replace(p, hint=hint) for p in check.timing]
        if check.volts:
            hint = _interval_hint(check.volt_lo, check.volt_hi, f"map-parameters{{v_scale}} (at v_offset={v_offset:g})")
            problems += [dataclasses.replace(p, hint=hint) for p in check.volts]
        if problems:
            raise ParameterError("parameters outside the chip's calibration range", problems)
        for note in notes:
            ctx.remark(note)

        lif_times = [o["refractory"] for n, o in pending.items() if g.nodes[n]["ir"].kind in SPIKING_KINDS]
        clocks = refractory_clocks(chip, np.concatenate(lif_times) if lif_times else np.zeros(0))
        single = []
        for name, out in pending.items():
            node = g.nodes[name]["ir"]
            if node.kind in SPIKING_KINDS:
                eff, clock, counter = _quantize_refractory(chip, out["refractory"], clocks)
                if node.max_spikes == 1:
                    single.append(name)
                elif node.max_spikes is not None:
                    ctx.remark(
                        f"{name}: max_spikes={node.max_spikes} has no chip counterpart; "
                        "the readout keeps the first spikes of each neuron"
                    )
            else:
                eff = clock = counter = np.zeros(node.size, np.int64)
            annotate_node(
                g,
                name,
                hw=HwParams(
                    kind=node.kind,
                    tau_mem=out["tau_mem"].copy(),
                    tau_syn=out["tau_syn"].copy(),
                    v_leak=out["v_leak"].copy(),
                    v_reset=np.asarray(out["v_reset"], np.float64).copy(),
                    v_threshold=np.asarray(out["v_threshold"], np.float64).copy(),
                    refractory=np.asarray(eff, np.float64),
                    refractory_clock=np.asarray(clock, np.int64),
                    refractory_counter=np.asarray(counter, np.int64),
                    fire=node.kind in SPIKING_KINDS,
                    max_spikes=getattr(node, "max_spikes", None),
                    weight_factor=out["weight_factor"].copy() if "weight_factor" in out else None,
                ),
            )
        runtime = None
        if self.runtime is not None:
            runtime = self.runtime / speedup
            if not (0 < runtime <= chip.max_runtime):
                raise ParameterError(
                    "runtime outside the experiment timer",
                    [
                        Violation(
                            f"runtime {self.runtime!r}s model = {_si(runtime)} on chip",
                            detail=f"allowed (0, {_si(chip.max_runtime)}] (2**{chip.timer_bits} FPGA cycles)",
                            check=21,
                        )
                    ],
                )
            if single and runtime > chip.refractory_range[1]:
                ctx.remark(
                    f"runtime {_si(runtime)} exceeds the longest refractory period {_si(chip.refractory_range[1])}: "
                    f"single-spike populations {', '.join(single)} may fire again on the chip"
                )
        if single:
            ctx.remark(
                f"max_spikes=1 populations {', '.join(single)}: refractory {_si(chip.refractory_range[1])} "
                f"(silent for runs up to {_si(chip.refractory_range[1] * speedup)} model time)"
            )
        annotate_graph(
            g,
            chip=chip,
            hw_params=ParameterMap(
                speedup=speedup, v_offset=v_offset, v_scale=v_scale, refractory_clocks=clocks, runtime=runtime
            ),
        )
        return g
