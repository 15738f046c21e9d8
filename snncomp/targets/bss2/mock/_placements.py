"""The placements of a ``MockExecutable``: placed and routed once, re-placed when new weights need it.

:class:`Placement` is one placement and routing of the network and everything the emulator derives from
its configuration (event tables, weight layout, device arrays, readout, engine plan).
:class:`PlacementCache` makes them (``snncomp.pipeline("bss2")``), keeps every one made, switches back to
one whose routing can hold new weights, and logs each placement and switch for the report.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array

from ....errors import BufferGrowthWarning, TargetError
from ....ir import SPIKING_KINDS, Network
from ....runtime import BufferOverflowError, is_tracer
from ..config import HardwareConfig
from ._arrays import ReadoutLayout, mock_arrays
from ._engine import EngineOptions, MockArrays
from ._layered import LayeredPlan, layered_plan
from ._neurons import neuron_arrays
from ._options import MockOptions
from ._routing import EventTables, event_tables
from ._weights import WeightLayout, requantize_host

__all__ = ["Placement", "PlacementCache"]

UNBOUNDED = 1 << 30  # readout budget of a population without max_spikes
MAX_AUTO_SPIKES = 4096  # spikes per neuron an automatically sized readout buffer may grow to


@dataclass
class Placement:
    """One placement and routing of the network and everything derived from its configuration."""

    result: Any
    config: HardwareConfig
    tables: EventTables
    layout: WeightLayout
    arrays: MockArrays
    options: EngineOptions
    readout: ReadoutLayout
    synapses: Array
    reason: str
    layered: LayeredPlan = field(default_factory=lambda: LayeredPlan("not analysed"))
    software: Any = None  # the jax target's program of the same network, for hardware-in-the-loop gradients

    def engine_for(self, t_max: Any, dtype: Any, requested: str) -> str:
        """``"layered"`` where the layer-parallel engine computes this run exactly, else ``"general"``.

        The configuration decides (:func:`~._layered.layered_plan`) -- except the window: every neuron's
        refractory period must outlast the run, which a traced ``t_max`` cannot show. ``requested`` is
        the ``engine`` option (``"layered"`` turns a fallback into an error).
        """
        plan = self.layered
        if plan.reason is not None or is_tracer(t_max):
            if plan.reason is None and requested == "layered":
                raise TargetError("engine='layered' needs a concrete t_max (its refractory check is made on the host)")
            return "general"
        t_end = float(np.asarray(t_max, dtype) / np.asarray(self.arrays.tick_model))  # as the engines compute it
        if t_end > plan.max_ticks:
            if requested == "layered":
                raise TargetError(
                    f"engine='layered' needs single-spike neurons: a refractory period of {plan.max_ticks:g} ticks "
                    f"is shorter than the run of {t_end:g} ticks"
                )
            return "general"
        return "layered"

    def config_with(self, weights: dict[str, np.ndarray]) -> HardwareConfig:
        """The configuration with ``weights`` (model units, per edge key) re-quantized into its synapses."""
        req = requantize_host(self.layout, weights)
        chip = self.config.chip
        synapses = req.synapses.reshape(chip.hemispheres, chip.rows_per_hemisphere, chip.columns).astype(np.uint8)
        rows = tuple(
            r.model_copy(update={"weights": synapses[r.hemisphere, r.row].tobytes().hex()}) for r in self.config.rows
        )
        # The projection map records each synapse's 6-bit weight too: keep it equal to the rows.
        projections = {
            key: pm.model_copy(update={"weight": synapses[pm.hemisphere, pm.row, pm.column].astype(int).tolist()})
            for key, pm in self.config.projections.items()
        }
        return self.config.model_copy(update={"rows": rows, "projections": projections})


class PlacementCache:
    """Every placement made for one executable, the current one, and the log of placements and switches.

    Copied shallowly with the executable (``with_config``, gain trims): the copy then replaces
    ``entries``/``current`` (and ``events`` where its log should part from the original's).
    """

    def __init__(self, options: MockOptions, pipeline_options: dict[str, Any]):
        self.options = options
        self.pipeline_options = pipeline_options
        cal = options.calibration
        # Per-circuit synaptic-gain trims [2, hemispheres, columns] (of the gain calibration), or None.
        self.trims: np.ndarray | None = None if cal is None else np.stack([cal.exc, cal.inh])
        self.entries: list[Placement] = []  # every placement made, reused when new weights fit one again
        self.events: list[str] = []
        self.pipeline_text = ""
        self.auto_pops: set[str] = set()  # populations without max_spikes or spikes_per_neuron
        self.auto_per = 8  # their readout buffers' spikes per neuron
        self.current: Placement  # set by place()

    def place(self, network: Network, reason: str) -> Placement:
        """Place and route ``network`` (the bss2 pipeline), keep the placement and make it current."""
        from ....passes import pipeline

        opts = dict(self.pipeline_options)
        if self.options.t_max is not None and "runtime" not in opts:
            opts["runtime"] = self.options.t_max
        pipe = pipeline("bss2", **opts)
        self.pipeline_text = str(pipe)
        pass_options = {"chip": self.options.chip} if self.options.chip is not None else {}
        result = pipe.run(network, options=pass_options, verify_each=self.options.verify_each)
        config: HardwareConfig = result.annotations["hardware_config"]
        quant = result.annotations.get("quantization")
        split = quant is not None and quant.saturate == "split"
        shapes = {k: tuple(e.weight.shape) for k, e in zip(result.network.edge_keys(), result.network.edges)}
        layout = WeightLayout.of(config, shapes, split)
        placement = self.build(result, config, layout, reason)
        self.entries.append(placement)
        self.events.append(f"placement {len(self.entries)}: {reason}")
        self.current = placement
        return placement

    def build(self, result: Any, config: HardwareConfig, layout: WeightLayout, reason: str) -> Placement:
        """The emulator's arrays, readout and engine plan of ``config`` (not kept: see :meth:`place`)."""
        options = self.options
        tables = event_tables(config)
        spn = options.spikes_per_neuron
        readout: list[tuple[str, int, int]] = []
        pop_of = np.zeros(tables.n_neurons, np.int64)
        index = np.zeros(tables.n_neurons, np.int64)
        budgets = np.zeros(tables.n_neurons, np.int64)
        sim_of = {int(k): n for n, k in enumerate(tables.neuron_ids)}
        offset = 0
        most = 1
        for name, pm in config.populations.items():
            if pm.kind not in SPIKING_KINDS:
                continue
            ms = config.neurons[pm.neurons[0]].max_spikes if pm.neurons else None
            if ms is None and spn is None:
                self.auto_pops.add(name)  # sized automatically; grown when a run overflows it
            per = ms if ms is not None else (int(spn) if spn is not None else self.auto_per)
            most = max(most, per)
            for k in pm.neurons:
                n = sim_of[int(k)]
                pop_of[n] = len(readout)
                index[n] = config.neurons[int(k)].index
                budgets[n] = ms if ms is not None else UNBOUNDED
            readout.append((name, offset, pm.size * per))
            offset += pm.size * per
        neurons = neuron_arrays(config, tables.neuron_ids, options.mock, options.chip_seed, budgets, self.trims)
        arrays, opts, ro = mock_arrays(
            config,
            tables,
            neurons,
            layout,
            tuple(readout),
            pop_of,
            index,
            most,
            options.mock,
            options.dtype,
            options.step,
        )
        # Without new parameters the chip runs the configuration's own synapse weights.
        synapses = jnp.asarray(layout.base.astype(options.dtype))
        if options.engine == "general":
            plan = LayeredPlan("the general engine was requested (engine='general')")
        else:
            plan = layered_plan(tables, neurons, opts, pop_of, np.array([c for _n, _o, c in readout], np.int64))
            if plan.reason is not None and options.engine == "layered":
                raise TargetError(f"engine='layered' cannot run this configuration: {plan.reason}")
        return Placement(result, config, tables, layout, arrays, opts, ro, synapses, reason, plan)

    def only(self, placement: Placement) -> None:
        """Make ``placement`` the current and only one (a rebuilt or given configuration)."""
        self.current = placement
        self.entries = [placement]

    def rebuild(self) -> None:
        """Build the current placement again (new trims or readout sizes) as the only one."""
        cur = self.current
        self.only(self.build(cur.result, cur.config, cur.layout, cur.reason))

    def first(self) -> None:
        """Switch back to the first placement, made for the compiled parameters (so it always holds them)."""
        if self.current is not self.entries[0]:
            self.current = self.entries[0]
            self.events.append("back to placement 1: the compiled parameters")

    def replace(self, network: Network, weights: dict[str, np.ndarray], reason: str) -> None:
        """Switch to a placement that can hold ``weights``: a cached one if any fits, else a new one of
        ``network`` (the compiled network) with these weights."""
        for k, cached in enumerate(self.entries):
            if cached is not self.current and not requantize_host(cached.layout, weights).needs_placement:
                self.current = cached
                self.events.append(f"back to placement {k + 1}: {reason}")
                return
        edges = tuple(
            e.model_copy(update={"weight": np.asarray(weights[k], np.float64).astype(e.weight.dtype)})
            for k, e in zip(network.edge_keys(), network.edges)
        )
        self.place(network.replace(edges=edges), f"redone: {reason}")

    def requantize(self, network: Network, weights: dict[str, np.ndarray], dtype: Any) -> tuple[Array, int, int]:
        """``weights`` (concrete, per edge key) re-quantized into the synapses of the current placement, or of
        another one (:meth:`replace`) where it cannot hold them; with the counts of saturated and lost weights."""
        req = requantize_host(self.current.layout, weights)
        if req.needs_placement:
            self.replace(network, weights, "; ".join(req.needs_placement))
            req = requantize_host(self.current.layout, weights)
        return jnp.asarray(req.synapses.astype(dtype)), req.saturated, req.lost

    def grow(self, factor: int) -> None:
        """``factor`` times the room in the automatically sized readout buffers (the current placement rebuilt)."""
        if not self.auto_pops:
            raise TargetError("grow_buffers: this executable has no automatically sized buffer")
        if self.auto_per * factor > MAX_AUTO_SPIKES:
            raise BufferOverflowError(
                f"population(s) {', '.join(sorted(self.auto_pops))} overflowed automatically sized readout "
                f"buffers of {self.auto_per} spikes per neuron, the most snncomp grows them to; bound them with "
                "max_spikes, or pass spikes_per_neuron=N explicitly"
            )
        self.auto_per *= factor
        self.rebuild()

    def warn_grown(self, grew: list[str], before: int, stacklevel: int) -> None:
        """Say that the automatically sized buffers of ``grew`` overflowed and were grown from ``before``
        (``stacklevel``: the warning's, as seen from here)."""
        now = self.auto_per
        warnings.warn(
            f"population(s) {', '.join(grew)}: the automatically sized readout buffer of {before} spikes per "
            f"neuron overflowed; grown to {now} and run again (compile with spikes_per_neuron="
            f"{now}, or set max_spikes, to size it yourself)",
            BufferGrowthWarning,
            stacklevel=stacklevel,
        )
