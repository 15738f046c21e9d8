"""``snncomp bss2-map`` (place and route a network, print the resource report; with ``--max-partitions``
the partitions, each one's report and the cut table) and ``snncomp bss2-calibrate`` (measure the
emulated chip's per-neuron gain and write the calibration)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..._cli_types import positive_int, positive_number

__all__ = ["add_commands"]


_positive_int = positive_int
_seconds = positive_number("a finite time > 0 in seconds")


def _cmd_bss2_map(args: argparse.Namespace) -> int:
    from ... import ir
    from ...errors import PipelineError
    from ...passes import PassManager, Pipeline, format_pipeline, pipeline
    from .passes.partition import PART_PIPELINE_OPTION
    from .report import format_report, placement_dot

    net = ir.load(args.network)
    passes = list(Pipeline(args.pipeline) if args.pipeline else pipeline("bss2"))
    chosen = {
        k: v
        for k, v in (("max_partitions", args.max_partitions), ("objective", args.objective), ("chips", args.chips))
        if v is not None
    }
    if chosen:
        if not any(p.name == "partition" for p in passes):
            raise PipelineError(
                f"--{next(iter(chosen)).replace('_', '-')} sets an option of the 'partition' pass, but the pipeline "
                "has none"
            )
        passes = [dataclasses.replace(p, **chosen) if p.name == "partition" else p for p in passes]
    if args.max_circuits_per_neuron is not None:
        # every pass with the option (place, partition) sizes multi-circuit neurons alike
        if not any(p.name == "place" for p in passes):
            raise PipelineError(
                "--max-circuits-per-neuron sets an option of the 'place' pass, but the pipeline has none"
            )
        passes = [
            dataclasses.replace(p, max_circuits_per_neuron=args.max_circuits_per_neuron)  # type: ignore[call-arg]
            if any(f.name == "max_circuits_per_neuron" for f in dataclasses.fields(p))
            else p
            for p in passes
        ]
    if args.first_fit:
        if not any(p.name == "place" for p in passes):
            raise PipelineError("--first-fit chooses the strategy of the 'place' pass, but the pipeline has none")
        # Only the 'place' pass (a Pass subclass) has a ``strategy`` field.
        passes = [
            dataclasses.replace(p, strategy="first-fit")  # type: ignore[call-arg]
            if p.name == "place"
            else p
            for p in passes
        ]
    # Each partition is lowered by the same passes (its own 'partition' pass leaves it whole).
    options = {PART_PIPELINE_OPTION: format_pipeline(passes)}
    result = PassManager(passes, print_after_all=bool(args.print_ir_after_all)).run(net, options)
    config = result.annotations.get("partitioned") or result.annotations.get("hardware_config")
    if config is None:
        raise PipelineError(
            "the pipeline made no hardware configuration: it must place and route the network "
            f"(end with the passes of snncomp.pipeline('bss2'): {pipeline('bss2')})"
        )
    sys.stdout.write(format_report(result) + "\n")
    for remark in result.remarks:
        print(remark)
    if args.output:
        config.save(args.output)
        print(f"wrote {args.output}")
    if args.dot:
        Path(args.dot).write_text(placement_dot(config))
        print(f"wrote {args.dot}")
    return 0


def _cmd_bss2_calibrate(args: argparse.Namespace) -> int:
    import numpy as np

    from ... import ir
    from ...ir import SPIKING_KINDS
    from ...runtime import compile as compile_network
    from .mock import MockConfig, calibrate_gain, circuits_of

    mock = MockConfig.realistic() if args.mock == "realistic" else MockConfig.ideal()
    circuits = None
    taus = {k: v for k, v in (("tau_mem", args.tau_mem), ("tau_syn", args.tau_syn)) if v is not None}
    if args.network:
        net = ir.load(args.network)
        exe = compile_network(net, target="bss2-mock", mock=mock, chip_seed=args.chip_seed)
        circuits = circuits_of(exe.lowered)
        # The network's own time constants as the chip realises them (instantaneous synapses and 'if'
        # neurons get the chip's substitutes), unless given.
        config = exe.lowered
        spiking = [
            config.neurons[k] for pm in config.populations.values() if pm.kind in SPIKING_KINDS for k in pm.neurons
        ]
        if spiking:
            first = [n for n in spiking if n.population == spiking[0].population]
            realised = {"tau_mem": [n.tau_mem for n in first], "tau_syn": [n.tau_syn_exc for n in first]}
            for name, values in realised.items():
                if name not in taus:
                    taus[name] = float(np.mean(values)) * config.speedup
        print(f"{net.name}: {len(circuits)} circuits to calibrate")
    cal = calibrate_gain(mock, args.chip_seed, circuits=circuits, rounds=args.rounds, repeats=args.repeats, **taus)
    print(cal.text())
    cal.save(args.output)
    print(f"wrote {args.output}  (use: compile(..., target='bss2-mock', calibration=GainCalibration.load(path)))")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``bss2-map`` and ``bss2-calibrate`` with the ``snncomp`` command."""
    p = subparsers.add_parser(
        "bss2-map",
        help="place and route a network onto BrainScaleS-2; print the resource report",
        description="Run the bss2 pipeline (map-parameters, split-sign, quantize, place, route, verify-config) "
        "and print used/available per resource, hemisphere and PADI bus.",
    )
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("-o", "--output", help="write the HardwareConfig JSON here")
    p.add_argument("--dot", help="write the placement picture (Graphviz) here")
    p.add_argument("--pipeline", help="pipeline string instead of snncomp.pipeline('bss2')")
    p.add_argument("--first-fit", action="store_true", help="use the naive first-fit placer (for comparison)")
    p.add_argument(
        "--max-partitions",
        type=_positive_int,
        default=None,
        help="cut a network larger than one chip into up to N partitions (default 1: refuse it)",
    )
    p.add_argument(
        "--objective",
        choices=("fewest-partitions", "fewest-cut-synapses"),
        default=None,
        help="what the partitioning minimises (default fewest-partitions)",
    )
    p.add_argument(
        "--chips",
        type=_positive_int,
        default=None,
        help="emulated chips: 1 runs the partitions one after another (default), N one partition per chip",
    )
    p.add_argument(
        "--max-circuits-per-neuron",
        type=_positive_int,
        default=None,
        help="circuits one neuron may span (place's and partition's option; default 4: fan-in up to 1024 slots)",
    )
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass")
    p.set_defaults(func=_cmd_bss2_map)

    c = subparsers.add_parser(
        "bss2-calibrate",
        help="calibrate the emulated chip's per-neuron synaptic gain from spikes; write the calibration JSON",
        description="Measure g/theta of every neuron circuit (or of those a network uses) of the emulated chip "
        "from spikes, excitatory and inhibitory, and trim each circuit's gain (docs/bss2.md).",
    )
    c.add_argument("network", nargs="?", help="network IR JSON: calibrate only the circuits it is placed on")
    c.add_argument("-o", "--output", default="calibration.json", help="where to write it (default calibration.json)")
    c.add_argument("--mock", choices=("realistic", "ideal"), default="realistic", help="the emulator preset")
    c.add_argument("--chip-seed", type=int, default=0, help="which emulated chip (its fixed-pattern noise)")
    c.add_argument("--rounds", type=_positive_int, default=2, help="measure-and-trim rounds (default 2)")
    c.add_argument("--repeats", type=_positive_int, default=2, help="runs per drive level (default 2)")
    c.add_argument(
        "--tau-mem",
        type=_seconds,
        default=None,
        help="model s (default: the network's, else calibrate_gain's 10e-3)",
    )
    c.add_argument(
        "--tau-syn",
        type=_seconds,
        default=None,
        help="model s (default: the network's, else calibrate_gain's 5e-3)",
    )
    c.set_defaults(func=_cmd_bss2_calibrate)
