"""Typed annotations the bss2 passes put on the graph.

Each is a frozen Pydantic model whose ``text()`` (also ``str()``) is the compact
form the graph printer shows; arrays serialize to JSON lists and print as
``i16[3,4](min=…, max=…)``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, PlainSerializer

from ...ir import FrozenModel
from ...ir._printer import format_array

__all__ = [
    "ConfigCheck",
    "HwParams",
    "ParameterMap",
    "PlacementSummary",
    "PopulationPlacement",
    "Quantization",
    "Quantized",
    "Routed",
    "SignSplit",
]

Array = Annotated[np.ndarray, PlainSerializer(lambda a: a.tolist(), return_type=list, when_used="json")]


class _Ann(FrozenModel):
    def text(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def __str__(self) -> str:
        return self.text()


def _si(x: float, unit: str = "s") -> str:
    """``1e-05`` -> ``10us``: times in the hardware's natural unit."""
    for scale, prefix in ((1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(x) >= scale or scale == 1e-9:
            return f"{x / scale:.4g}{prefix}{unit}"
    return f"{x}{unit}"  # pragma: no cover


def _vals(a: np.ndarray, unit: str = "", time: bool = False) -> str:
    """A per-neuron array as one value when uniform, else as min..max."""
    lo, hi = float(a.min()), float(a.max())
    fmt = (lambda x: _si(x)) if time else (lambda x: f"{x:.4g}{unit}")
    return fmt(lo) if lo == hi else f"{fmt(lo)}..{fmt(hi)}"


def ranges(values: list[int] | np.ndarray) -> str:
    """``[0,1,2,3,7,9,10]`` -> ``0-3,7,9-10``."""
    vals = sorted(int(v) for v in values)
    out: list[str] = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ",".join(out)


class ParameterMap(_Ann):
    """Graph annotation of ``map-parameters``: the model <-> hardware maps used for the whole chip.

    ``t_hw = t_model / speedup``; ``V_hw [CADC LSB] = v_offset + v_scale * V_model``. The refractory counter
    runs on a ``fast`` or ``slow`` clock, ``chip_clock / 2**(scale+1)`` each (the same two on both hemispheres).
    """

    speedup: float
    v_offset: float
    v_scale: float
    refractory_clocks: tuple[int, int]
    runtime: float | None = None

    def text(self) -> str:
        run = f" runtime={_si(self.runtime)}" if self.runtime is not None else ""
        return (
            f"speedup={self.speedup:g} V_lsb={self.v_offset:g}+{self.v_scale:g}*V "
            f"refractory clocks fast={self.refractory_clocks[0]} slow={self.refractory_clocks[1]}{run}"
        )


class HwParams(_Ann):
    """Node annotation of ``map-parameters``: per-neuron hardware targets of one population.

    Times in hardware seconds, potentials in CADC LSB. ``refractory`` is the effective (counter-quantized)
    time ``counter / clock``; ``fire`` is False for ``li`` readouts (threshold comparator off).
    ``v_leak`` is the chip's leak target: the model's ``v_leak + bias`` (``0`` for ``if``).
    ``weight_factor`` (per neuron; ``None`` = 1) multiplies the weights of projections into the population
    on top of the quantization scale: it compensates the short synaptic time constant that stands in for
    instantaneous synapses (``tau_syn = 0``, ``if``), ``(tau_mem - tau_syn) / tau_syn``, so that a spike's
    voltage kick after its rise equals the model's jump ``w`` (``docs/bss2.md``).
    """

    kind: Literal["lif", "li", "if"]
    tau_mem: Array
    tau_syn: Array
    v_leak: Array
    v_reset: Array
    v_threshold: Array
    refractory: Array
    refractory_clock: Array  # 0 = fast, 1 = slow
    refractory_counter: Array
    fire: bool
    max_spikes: int | None = None
    weight_factor: Array | None = None

    def text(self) -> str:
        parts = [f"tau_mem={_vals(self.tau_mem, time=True)}", f"tau_syn={_vals(self.tau_syn, time=True)}"]
        if self.weight_factor is not None:
            parts.append(f"w*{_vals(self.weight_factor)}")
        parts.append(f"v_leak={_vals(self.v_leak)}")
        if self.fire:
            parts += [
                f"v_reset={_vals(self.v_reset)}",
                f"v_th={_vals(self.v_threshold)}",
                f"refrac={_vals(self.refractory, time=True)}",
            ]
        else:
            parts.append("no-fire")
        return " ".join(parts)


class SignSplit(_Ann):
    """Edge annotation of ``split-sign``: which synapses get an excitatory and which an inhibitory slot.

    ``both``: every synapse of the mask gets one of each (the sign may change in training without
    re-routing); ``used``: only the sign of the current weight (zero weights get none).
    """

    signs: Literal["both", "used"]
    exc: Array
    inh: Array

    def text(self) -> str:
        return f"exc={int(self.exc.sum())} inh={int(self.inh.sum())} ({self.signs})"


class Quantized(_Ann):
    """Edge annotation of ``quantize``: the signed hardware weights ``w_hw = round(clip(scale * factor * w))``.

    ``w_hw`` is the total per synapse; under ``saturate=split`` magnitudes above the synapse maximum are
    spread over several synapses of at most that maximum each. ``factor`` (per target neuron, ``None`` = 1)
    is the target population's ``HwParams.weight_factor``. Effective weight (the synaptic-current jump the
    chip realises): ``w_hw / scale``; into instantaneous synapses that stands for the voltage jump
    ``w_hw / (scale * factor)`` (:meth:`jump`).
    """

    scale: float
    w_max: int
    w_hw: Array
    saturated: int
    split_extra: int
    max_error: float
    saturation_error: float = 0.0
    factor: Array | None = None

    def effective(self) -> np.ndarray:
        """The dequantized weight in model units: the synaptic-current jump the chip realises."""
        return self.w_hw.astype(np.float64) / self.scale

    def jump(self) -> np.ndarray:
        """The model weight the chip stands in for: ``effective() / factor`` (the voltage jump of an
        instantaneous synapse; ``effective()`` where there is no factor)."""
        if self.factor is None:
            return self.effective()
        return self.w_hw.astype(np.float64) / (self.scale * self.factor.astype(np.float64)[None, :])

    def text(self) -> str:
        extra = f" split+{self.split_extra}" if self.split_extra else ""
        sat = f" (largest error {self.saturation_error:.3g})" if self.saturated else ""
        return f"w_hw={format_array(self.w_hw)} saturated={self.saturated}{sat}{extra} max_err={self.max_error:.3g}"


class Quantization(_Ann):
    """Graph annotation of ``quantize``: the options and totals.

    ``max_error`` is the largest rounding error of a weight within range (at most half a step);
    ``saturated`` counts the weights clipped at the synapse maximum and ``saturation_error`` is the
    largest error among them (``|w - w_hw / scale|``, unbounded). ``worst_error`` is the larger of the two.
    """

    scale: float
    bits: int
    saturate: Literal["clip", "split"]
    weights: int
    saturated: int
    split_extra: int
    max_error: float
    saturation_error: float = 0.0

    @property
    def step(self) -> float:
        """One hardware weight step in model units."""
        return 1.0 / self.scale

    @property
    def worst_error(self) -> float:
        """The largest error of any weight, saturated or not, in model units."""
        return max(self.max_error, self.saturation_error)

    def text(self) -> str:
        text = (
            f"scale={self.scale:g} bits={self.bits} saturate={self.saturate} weights={self.weights} "
            f"split_extra={self.split_extra} max_err={self.max_error:.3g} (half step {0.5 / self.scale:.3g}), "
            f"saturated={self.saturated} of {self.weights} weights"
        )
        if self.saturated:
            text += f", largest saturation error {self.saturation_error:.3g}"
        return text


class PopulationPlacement(_Ann):
    """Node annotation of ``place``: the anchor circuit of every neuron and the circuits per neuron.

    Neuron ``i`` occupies columns ``column[i] .. column[i]+width-1`` of hemisphere ``hemisphere[i]``
    (circuits shorted into one logical neuron); it spikes from its anchor ``column[i]``.
    """

    hemisphere: Array
    column: Array
    width: int
    pinned: bool = False

    def circuits(self) -> list[tuple[int, int]]:
        """Every (hemisphere, column) the population occupies."""
        return [(int(h), int(c) + k) for h, c in zip(self.hemisphere, self.column) for k in range(self.width)]

    def text(self) -> str:
        parts = []
        for h in sorted(set(self.hemisphere.tolist())):
            parts.append(f"h{h}:c{ranges(self.column[self.hemisphere == h])}")
        width = f" x{self.width}" if self.width > 1 else ""
        return " ".join(parts) + width + (" pinned" if self.pinned else "")


class PlacementSummary(_Ann):
    """Graph annotation of ``place``: strategy, circuits used, and the row demand it expects per PADI bus."""

    strategy: str
    circuits: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]
    feasible: bool

    def text(self) -> str:
        circ = " ".join(f"h{h}={n}" for h, n in enumerate(self.circuits))
        rows = " ".join(f"h{h}=[{','.join(map(str, r))}]" for h, r in enumerate(self.rows))
        ok = "" if self.feasible else " (over capacity)"
        return f"{self.strategy}: circuits {circ}; rows per bus {rows}{ok}"


class Routed(_Ann):
    """Edge annotation of ``route``: how many synapses the projection got and on which PADI buses."""

    synapses: int
    buses: tuple[str, ...]

    def text(self) -> str:
        return f"synapses={self.synapses} via {','.join(self.buses) or 'none'}"


class ConfigCheck(_Ann):
    """Graph annotation of ``verify-config``: what the independent check found."""

    synapses: int
    contacts: int
    zero_contacts: int
    idle_deliveries: int
    checks: int

    def text(self) -> str:
        return (
            f"ok: {self.synapses} intended synapses realised exactly; {self.contacts} contacts, "
            f"{self.zero_contacts} extra zero-weight contacts, {self.idle_deliveries} idle bus deliveries; "
            f"{self.checks} structural checks passed"
        )


def jsonable(value: Any) -> Any:
    """Plain JSON data for an annotation (arrays as lists)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value
