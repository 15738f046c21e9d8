"""``MockReport``: the report of a ``MockExecutable`` -- the bss2 resource report, the emulator settings,
the placements made, which engine runs and why, and the last run's health."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ....ir import SPIKING_KINDS, Network
from ....runtime import Report, network_resources
from ..report import resource_report
from ._calibration_data import circuits_of
from ._health import MockHealth
from ._options import MockOptions
from ._placements import Placement

__all__ = ["MockReport", "mock_report", "schedule_text"]


@dataclass(frozen=True)
class MockReport(Report):
    """``MockExecutable.report()``: the bss2 resource report, the emulator settings and the last run's health."""

    resource_table: str = ""
    mock: str = ""
    placements: list[str] = field(default_factory=list)
    health: str = "no run yet"

    def body_lines(self) -> list[str]:
        bufs = ", ".join(f"{k}={v}" for k, v in sorted(self.buffers.items())) or "none"
        return [
            f"emulator: {self.schedule}; {self.mock}",
            "placement: " + "; ".join(self.placements),
            self.resource_table,
            f"readout buffers (spikes per sample): {bufs}",
        ]

    def status_lines(self) -> list[str]:
        return [f"health of the last run: {self.health}"]


def _remarks(cur: Placement, options: MockOptions) -> list[str]:
    """The pipeline's remarks and the emulator's: gain calibration coverage and taus, ignored crossbar nodes."""
    remarks = [str(r) for r in cur.result.remarks]
    cal = options.calibration
    if cal is not None:
        cols = cur.config.chip.columns
        missed = [c for c in circuits_of(cur.config) if not cal.measured[c // cols, c % cols]]
        if missed:
            remarks.append(f"{len(missed)} circuit(s) in use were not covered by the gain calibration (trim 1)")
        for name, pm in cur.config.populations.items():
            if pm.kind not in SPIKING_KINDS or not pm.neurons:
                continue
            n = cur.config.neurons[pm.neurons[0]]
            taus = (n.tau_mem * cur.config.speedup, n.tau_syn_exc * cur.config.speedup)
            if not np.allclose(taus, (cal.tau_mem, cal.tau_syn), rtol=1e-6):
                # The measured g/theta includes the response's peak height, which depends on the taus.
                remarks.append(
                    f"population '{name}' has tau_mem={taus[0]:g}, tau_syn={taus[1]:g} s; the gain calibration "
                    f"was measured at {cal.tau_mem:g}, {cal.tau_syn:g} s (calibrate_gain(tau_mem=, tau_syn=))"
                )
    if cur.tables.ignored_nodes:
        remarks.append(f"{cur.tables.ignored_nodes} crossbar node(s) the chip does not have were ignored")
    return remarks


def mock_report(
    *,
    target: str,
    network: Network,
    placement: Placement,
    options: MockOptions,
    params: Mapping[str, Any],
    pipeline: str,
    compile_seconds: float,
    removed: dict[str, str],
    events: list[str],
    health: MockHealth | None,
    engine_used: str | None,
) -> MockReport:
    """The report of an executable compiled with ``options`` for ``network`` (the compiled network), now on
    ``placement``; ``events`` the placement log, ``health``/``engine_used`` those of the last run."""
    cur = placement
    net = network
    res = resource_report(cur.config)
    resources = {
        **network_resources(net, params),
        "synapses": sum(p.synapses for p in cur.config.projections.values()),
        "event_lanes": cur.tables.n_lanes,
        "synapse_contacts": len(cur.tables.contact_lane),
    }
    calibration = options.calibration
    return MockReport(
        target=target,
        network=net.name,
        dtype=str(np.dtype(options.dtype)),
        t_max=options.t_max,
        pipeline=pipeline,
        schedule=schedule_text(cur, engine_used),
        stages=[],
        buffers={name: cap for name, _o, cap in cur.readout.populations},
        resources=resources,
        compile_seconds=compile_seconds,
        remarks=_remarks(cur, options),
        removed=dict(removed),
        resource_table=res.table(),
        mock=f"mock {options.mock.text()}; chip_seed={options.chip_seed}, trial_seed={options.trial_seed}"
        + ("" if calibration is None else f"; {calibration.text()}"),
        placements=list(events),
        health=health.text() if health is not None else "no run yet",
    )


def schedule_text(cur: Placement, engine_used: str | None) -> str:
    """Which engine runs (ran) this placement, and why (``engine_used``: that of the last run)."""
    clock = f"{cur.config.chip.timestamp * 1e9:g} ns"
    general = f"general engine, event-driven on the {clock} FPGA clock, exact between events"
    plan = cur.layered
    if plan.reason is not None:
        return f"{general} (layer-parallel engine not applicable: {plan.reason})"
    layered = f"layer-parallel engine, closed form per layer ({plan.text()})"
    if engine_used == "general":
        return (
            f"{general} for the last run (layer-parallel engine not applicable to it: t_max longer than "
            f"the shortest refractory period of {plan.max_ticks:g} ticks, or traced); otherwise {layered}"
        )
    return layered
