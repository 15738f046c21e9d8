"""Event delivery as configured: which synapses an event reaches, read from a ``HardwareConfig`` alone.

An *event source* is an on-chip neuron that fires (its 14-bit label ``event_output << 8 | address_out``
enters crossbar input ``event_output``) or one 16-bit label of an external (FPGA) input channel (channel
in bits 15..14 selects crossbar input ``8 + channel``). For every source the tables follow the chip's
chain (spec §1.3, §1.5):

1. every enabled crossbar node of the source's crossbar input forwards it iff
   ``(label & mask) == target``; outputs 0..7 are PADI buses, 8..11 go to the FPGA (recording);
2. on PADI bus ``b`` of hemisphere ``h`` the event carries row select ``(label >> 6) & 31`` and synapse
   label ``label & 63``; driver ``d = j * 4 + b`` (bus index ``j``) accepts it iff
   ``(j & row_mask) == (row_select & row_mask)``;
3. an accepting driver fires its two rows; a row whose mode is ``disabled`` does nothing, otherwise its
   mode is the sign;
4. every synapse of a fired row whose stored label equals the event's synapse label adds its 6-bit weight
   to the excitatory or inhibitory input of the logical neuron owning its column.

A (source, PADI bus) pair is a *lane*: the unit the bus's event-rate limit applies to. Its *contacts* are
the synapses it reaches. Weights are not part of the tables (they are read per run, so re-quantized
weights need no new tables); a mis-configured label, mask, node or row mode changes the contacts, which
is how a mis-routed configuration produces mis-routed spikes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import HardwareConfig

__all__ = ["EventTables", "event_tables"]


@dataclass(frozen=True)
class EventTables:
    """Static routing of one configuration (host arrays).

    Neurons that fire are simulated, in ``config.neurons`` order: ``neuron_ids[n]`` is the index into
    ``config.neurons``. Sources ``0 .. N-1`` are those neurons, sources ``N ..`` the external labels
    (``external_source[j] = (config.external index, label)``). ``source_lanes[s]`` lists the lanes of
    source ``s`` (``-1`` padding); ``lane_bus[l]`` is the crossbar output (``h * 4 + b``) of lane ``l``.
    Contact ``k`` of lane ``contact_lane[k]`` is synapse ``contact_synapse[k]`` (flat index
    ``(h * rows + r) * columns + c``) feeding simulated neuron ``contact_neuron[k]`` with sign
    ``contact_sign[k]`` (0 excitatory, 1 inhibitory). ``recorded[n]``: neuron ``n``'s spikes reach an
    FPGA output. ``input_sources[pop][i]`` lists the source ids of input channel ``i`` (``-1`` padding).
    """

    neuron_ids: np.ndarray
    external_source: list[tuple[int, int]]
    source_lanes: np.ndarray
    lane_bus: np.ndarray
    lane_source: np.ndarray
    contact_lane: np.ndarray
    contact_synapse: np.ndarray
    contact_neuron: np.ndarray
    contact_sign: np.ndarray
    recorded: np.ndarray
    input_sources: dict[str, np.ndarray]
    ignored_nodes: int

    @property
    def n_neurons(self) -> int:
        """Simulated (firing) neurons."""
        return len(self.neuron_ids)

    @property
    def n_sources(self) -> int:
        """Event sources: firing neurons, then external labels."""
        return len(self.source_lanes)

    @property
    def n_lanes(self) -> int:
        """(source, PADI bus) pairs."""
        return len(self.lane_bus)


def _crossbar_outputs(config: HardwareConfig, inp: int, label: int) -> list[int]:
    """Crossbar outputs an event with 14-bit ``label`` on crossbar input ``inp`` reaches (real nodes only)."""
    real = config.chip.crossbar_set
    return sorted(
        {
            node.output
            for node in config.crossbar
            if node.input == inp and (node.input, node.output) in real and (label & node.mask) == node.target
        }
    )


def event_tables(config: HardwareConfig) -> EventTables:
    """Follow every event source of ``config`` through crossbar, PADI bus, drivers, rows and synapse labels."""
    chip = config.chip
    H, R, C = chip.hemispheres, chip.rows_per_hemisphere, chip.columns
    B, J, rpd = chip.buses_per_hemisphere, chip.drivers_per_bus, chip.rows_per_driver
    lbits = chip.label_bits
    rs_full = (1 << chip.row_select_bits) - 1
    n_padi = H * B
    label14 = (1 << chip.neuron_label_bits) - 1

    neuron_ids = np.array([k for k, n in enumerate(config.neurons) if n.fire], np.int64)
    sim_of = np.full(len(config.neurons) + 1, -1, np.int64)
    sim_of[neuron_ids] = np.arange(len(neuron_ids))

    # Sources: (crossbar input, 14-bit label).
    sources: list[tuple[int, int]] = [(config.neurons[k].event_output, config.neurons[k].label) for k in neuron_ids]
    external_source: list[tuple[int, int]] = []
    input_lists: dict[str, list[list[int]]] = {
        pop: [[] for _ in range(pm.size)] for pop, pm in config.populations.items() if pm.kind == "input"
    }
    for e_idx, ext in enumerate(config.external):
        for lab in ext.labels:
            sid = len(sources)
            sources.append((chip.event_outputs + (lab >> chip.neuron_label_bits), lab & label14))
            external_source.append((e_idx, lab))
            if ext.population in input_lists and ext.index < len(input_lists[ext.population]):
                input_lists[ext.population][ext.index].append(sid)

    ignored = sum(1 for node in config.crossbar if (node.input, node.output) not in chip.crossbar_set)
    outputs = [_crossbar_outputs(config, inp, lab) for inp, lab in sources]
    fpga = range(n_padi, chip.crossbar_outputs)
    recorded = np.array([any(o in fpga for o in outputs[s]) for s in range(len(neuron_ids))], bool)

    lane_src: list[int] = []
    lane_bus: list[int] = []
    for s, outs in enumerate(outputs):
        for o in outs:
            if o < n_padi:
                lane_src.append(s)
                lane_bus.append(o)
    lane_src_a = np.array(lane_src, np.int64)
    lane_bus_a = np.array(lane_bus, np.int64)
    per_source = np.bincount(lane_src_a, minlength=len(sources)) if len(lane_src_a) else np.zeros(len(sources), int)
    K = max(1, int(per_source.max(initial=0)))
    source_lanes = np.full((len(sources), K), -1, np.int64)
    fill = np.zeros(len(sources), np.int64)
    for lane, s in enumerate(lane_src):
        source_lanes[s, fill[s]] = lane
        fill[s] += 1

    syn_labels = config.synapse_labels().astype(np.int64)
    modes = config.row_modes().astype(np.int64)
    masks = config.row_masks()
    owner = config.circuit_owner()
    c_lane, c_syn, c_neuron, c_sign = [], [], [], []
    labels_of = np.array([lab for _inp, lab in sources], np.int64)
    for o in range(n_padi):
        lanes = np.nonzero(lane_bus_a == o)[0]
        if len(lanes) == 0:
            continue
        h, b = divmod(o, B)
        labs = labels_of[lane_src_a[lanes]]
        rs = (labs >> lbits) & rs_full
        sl = labs & ((1 << lbits) - 1)
        j = np.arange(J)
        drivers = j * B + b
        m = masks[h, drivers]
        accept = ((j[None, :] ^ rs[:, None]) & m[None, :]) == 0  # [lanes, J]
        rows = (drivers[:, None] * rpd + np.arange(rpd)[None, :]).reshape(-1)  # [J * rpd]
        fired = np.repeat(accept, rpd, axis=1) & (modes[h, rows] > 0)[None, :]  # [lanes, J * rpd]
        match = fired[:, :, None] & (syn_labels[h, rows][None, :, :] == sl[:, None, None])  # [lanes, rows, C]
        li, ri, ci = np.nonzero(match)
        target = sim_of[owner[h, ci]] if len(ci) else np.zeros(0, np.int64)
        keep = target >= 0
        r_abs = rows[ri]
        c_lane.append(lanes[li][keep])
        c_syn.append(((h * R + r_abs) * C + ci)[keep])
        c_neuron.append(target[keep])
        c_sign.append((modes[h, r_abs] - 1)[keep])

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    input_sources = {}
    for pop, lists in input_lists.items():
        width = max(1, max((len(x) for x in lists), default=0))
        arr = np.full((len(lists), width), -1, np.int64)
        for i, x in enumerate(lists):
            arr[i, : len(x)] = x
        input_sources[pop] = arr
    return EventTables(
        neuron_ids=neuron_ids,
        external_source=external_source,
        source_lanes=source_lanes,
        lane_bus=lane_bus_a,
        lane_source=lane_src_a,
        contact_lane=cat(c_lane),
        contact_synapse=cat(c_syn),
        contact_neuron=cat(c_neuron),
        contact_sign=cat(c_sign),
        recorded=recorded,
        input_sources=input_sources,
        ignored_nodes=ignored,
    )
