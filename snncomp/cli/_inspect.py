"""``snncomp inspect``: tables of populations, projections, structure and schedule."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import SnnCompError
from ..ir import Network, format_value
from ..ir._printer import format_array


def analyze(net: Network, spikes_per_neuron: int | None = None) -> tuple[Any, str]:
    """Run the analysis passes (no rewriting); returns the result and a note if scheduling failed."""
    from .. import passes

    base = "verify,infer-shapes,analyze-structure"
    sched = "schedule" if spikes_per_neuron is None else f"schedule{{spikes_per_neuron={spikes_per_neuron}}}"
    try:
        return passes.Pipeline(f"{base},{sched}").run(net), ""
    except SnnCompError as exc:
        result = passes.Pipeline(base).run(net)
        reason = str(exc).split("\n")[0]
        return result, f"no schedule: {reason}"


def inspect_network(net: Network, *, spikes_per_neuron: int | None = None, console: Console | None = None) -> None:
    """Print the tables for ``net``."""
    console = console or Console(width=160)
    result, note = analyze(net, spikes_per_neuron)
    g = result.graph
    ann = g.graph["ann"]

    pops = Table(title=f"network '{net.name}': populations", title_justify="left")
    for col in (
        "population",
        "kind",
        "size",
        "parameters",
        "layer",
        "fan-in",
        "fan-out",
        "schedule",
        "stage",
        "buffer",
    ):
        pops.add_column(
            col, justify="right" if col in ("size", "layer", "fan-in", "fan-out", "stage", "buffer") else "left"
        )
    outputs = set(net.output_names())
    for name in g.nodes:
        node = g.nodes[name]["ir"]
        a = g.nodes[name]["ann"]
        params = " ".join(
            f"{f}={format_value(getattr(node, f))}"
            for f in type(node).model_fields
            if f not in ("kind", "name", "size")
        )
        label = name + (" (out)" if name in outputs else "")
        pops.add_row(
            label,
            node.kind,
            str(node.size),
            params,
            str(a.get("layer", "")),
            str(a.get("fan_in", "")),
            str(a.get("fan_out", "")),
            a.get("schedule", "-"),
            str(a.get("stage", "-")),
            str(a.get("buffer", "-")),
        )
    console.print(pops)

    proj = Table(title="projections", title_justify="left")
    for col in ("key", "source -> target", "synapses", "weight", "delay", "recurrent"):
        proj.add_column(col)
    for u, v, key, data in sorted(g.edges(keys=True, data=True), key=lambda e: e[3]["index"]):
        e = data["ir"]
        proj.add_row(
            key,
            f"{u} -> {v}",
            str(e.n_synapses),
            format_array(e.weight),
            f"{e.delay!r} s",
            "yes" if data["ann"].get("recurrent") else "no",
        )
    console.print(proj)

    structure = ann["structure"]
    console.print(f"structure: {structure.text()}")
    if "schedule" in ann:
        console.print(f"schedule: {ann['schedule'].text()}")
    if note:
        console.print(f"schedule: {note}")
