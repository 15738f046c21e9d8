"""Host tables of one placement -> padded device arrays (:class:`~._engine.MockArrays`) and engine options.

Every size (neurons, lanes, contacts, weights, readout slots, input channels, ...) is rounded up to a
power of two, so that networks of similar size share one compiled program: compiling the run loop
takes seconds, placing a network milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..config import HardwareConfig
from ._config import MockConfig
from ._engine import EngineOptions, MockArrays, RunTables
from ._neurons import NeuronArrays
from ._routing import EventTables
from ._weights import WeightLayout

__all__ = ["ReadoutLayout", "bucket", "mock_arrays"]

_MAX_NOISE_SLOTS = 64  # per-neuron noise draws per run; later spikes reuse the last one
_NEVER = 1e30  # threshold of padding neurons


_MIN = 64  # smallest size class: small networks all share one compiled program


def bucket(n: int, minimum: int = _MIN) -> int:
    """The power of two >= ``max(n, minimum)``."""
    n = max(int(n), minimum, 1)
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True)
class ReadoutLayout:
    """Host-side layout of the padded arrays.

    ``populations``: ``(population, offset, capacity)`` of every readout buffer, in configuration order;
    ``input_offsets``: the first global input channel of every input population; ``weight_offsets``: where
    each projection's ``[source, target]`` weights start in the flat weight vector of ``weight_length``.
    """

    populations: tuple[tuple[str, int, int], ...]
    input_offsets: dict[str, int]
    weight_offsets: dict[str, tuple[int, tuple[int, int]]]
    weight_length: int


def mock_arrays(
    config: HardwareConfig,
    tables: EventTables,
    neurons: dict[str, np.ndarray],
    layout: WeightLayout,
    readout: tuple[tuple[str, int, int], ...],
    pop_of: np.ndarray,
    index: np.ndarray,
    per_neuron: int,
    mock: MockConfig,
    dtype: np.dtype,
    step: int,
) -> tuple[MockArrays, EngineOptions, ReadoutLayout]:
    """Pad and upload one placement; ``readout`` lists ``(population, offset, capacity)`` per buffer."""
    chip = config.chip
    N = tables.n_neurons
    n_pad = bucket(N)
    f = lambda x: jnp.asarray(np.asarray(x, np.float64).astype(dtype))  # noqa: E731
    i32 = lambda x: jnp.asarray(np.asarray(x).astype(np.int32))  # noqa: E731

    def pad(x: np.ndarray, n: int, value: float) -> np.ndarray:
        out = np.full((n, *np.shape(x)[1:]), value, dtype=np.asarray(x).dtype)
        out[: len(x)] = x
        return out

    fill = {"a": 1.0, "be": 1.0, "bi": 1.0, "theta": _NEVER, "reset": 0.0, "gain_exc": 0.0, "gain_inh": 0.0}
    fill |= {"refractory": 1.0, "clock_period": 1.0, "counter": 1.0}
    nz = NeuronArrays(
        **{k: f(pad(np.asarray(neurons[k], np.float64), n_pad, v)) for k, v in fill.items()},
        budget=i32(pad(np.asarray(neurons["budget"], np.int64), n_pad, 0)),
    )

    # Sources: neurons 0..N-1 -> 0..N-1; external labels N.. -> n_pad..
    n_ext = tables.n_sources - N
    K = bucket(tables.source_lanes.shape[1], 2)
    lanes = np.full((n_pad + bucket(n_ext), K), -1, np.int64)
    lanes[:N, : tables.source_lanes.shape[1]] = tables.source_lanes[:N]
    lanes[n_pad : n_pad + n_ext, : tables.source_lanes.shape[1]] = tables.source_lanes[N:]
    n_lanes = bucket(tables.n_lanes)
    pops = len(readout)
    p_pad = bucket(pops, 4)
    run_tables = RunTables(
        source_lanes=i32(lanes),
        lane_bus=i32(pad(tables.lane_bus, n_lanes, 0)),
        recorded=jnp.asarray(pad(tables.recorded, n_pad, False)),
        pop_of=i32(pad(pop_of, n_pad, 0)),
        index=i32(pad(index, n_pad, -1)),
        capacity=i32(pad(np.array([c for _p, _o, c in readout], np.int64), p_pad, 0)),
        offset=i32(pad(np.array([o for _p, o, _c in readout], np.int64), p_pad, 0)),
    )
    n_contacts = bucket(len(tables.contact_lane), 1024)
    contact_lane = pad(tables.contact_lane, n_contacts, n_lanes)  # out of range: dropped
    z = chip.hemispheres * chip.rows_per_hemisphere * chip.columns

    # Input channels: population offset + index; their external-label source ids, shifted past the padding.
    input_offsets: dict[str, int] = {}
    rows: list[list[np.ndarray]] = []
    for pop, pm in config.populations.items():
        if pm.kind != "input":
            continue
        input_offsets[pop] = sum(len(r) for r in rows)
        src = tables.input_sources.get(pop, np.full((pm.size, 1), -1, np.int64))
        rows.append([np.where(r >= 0, r - N + n_pad, -1) for r in src])
    width = bucket(max([1] + [len(r) for group in rows for r in group]), 2)
    channels = [r for group in rows for r in group]
    input_sources = np.full((bucket(len(channels)), width), -1, np.int64)
    for i, r in enumerate(channels):
        input_sources[i, : len(r)] = r

    # ReadoutLayout slots: the population (block) of each, padding after every population.
    e_total = sum(c for _p, _o, c in readout)
    e_pad = bucket(e_total, 256)
    block = np.full(e_pad, pops, np.int64)
    for p, (_name, off, cap) in enumerate(readout):
        block[off : off + cap] = p

    # Weight entries: one per physical synapse, indexing a flat vector of all projections' weights.
    weight_offsets: dict[str, tuple[int, tuple[int, int]]] = {}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("w", "sign", "syn", "copy", "copies", "alone", "scale")}
    length = 0
    for key, proj in layout.projections.items():
        weight_offsets[key] = (length, proj.shape)
        parts["w"].append(length + proj.pre * proj.shape[1] + proj.post)
        parts["sign"].append(proj.sign)
        parts["syn"].append(proj.synapse)
        parts["copy"].append(proj.copy)
        parts["copies"].append(proj.copies)
        parts["alone"].append(
            np.where(proj.sign == 0, ~proj.has_inh[proj.pre, proj.post], ~proj.has_exc[proj.pre, proj.post])
        )
        parts["scale"].append(layout.scale * proj.factor[proj.post])
        length += proj.shape[0] * proj.shape[1]
    cat = {k: (np.concatenate(v) if v else np.zeros(0, np.int64)) for k, v in parts.items()}
    n_entries = bucket(len(cat["w"]), 1024)
    arrays = MockArrays(
        neurons=nz,
        tables=run_tables,
        contact_lane=i32(contact_lane),
        contact_neuron=i32(pad(tables.contact_neuron, n_contacts, 0)),
        contact_sign=i32(pad(tables.contact_sign, n_contacts, 0)),
        contact_synapse=i32(pad(tables.contact_synapse, n_contacts, 0)),
        input_sources=i32(input_sources),
        record_block=i32(block),
        entry_weight=i32(pad(cat["w"], n_entries, -1)),
        entry_sign=i32(pad(cat["sign"], n_entries, 0)),
        entry_synapse=i32(pad(cat["syn"], n_entries, z)),
        entry_copy=f(pad(cat["copy"], n_entries, 0)),
        entry_copies=f(pad(cat["copies"], n_entries, 1)),
        entry_alone=jnp.asarray(pad(cat["alone"].astype(bool), n_entries, False)),
        entry_scale=f(pad(cat["scale"].astype(np.float64), n_entries, layout.scale)),
        base_synapses=f(layout.base),
        scale=f(layout.scale),
        tick_model=f(chip.timestamp * config.speedup),
    )
    opts = EngineOptions(
        buses=chip.hemispheres * chip.buses_per_hemisphere,
        bus_queue=mock.bus_queue,
        rate_limit=mock.rate_limit,
        clock_phase=mock.refractory_clock_phase,
        record_total=e_pad,
        noise_slots=bucket(min(_MAX_NOISE_SLOTS, per_neuron + 1), 8),
        noisy=mock.jitter > 0 or mock.threshold_noise > 0,
        quantize_timestamps=mock.quantize_timestamps,
        split=layout.split,
        w_max=layout.w_max,
        step=step,
        newton=2 if step <= 16 else (3 if step <= 64 else 4),
    )
    return arrays, opts, ReadoutLayout(readout, input_offsets, weight_offsets, bucket(length, 1024))
