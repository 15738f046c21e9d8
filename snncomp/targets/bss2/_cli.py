"""``snncomp bss2-map``: place and route a network onto BrainScaleS-2 and print the resource report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_commands"]


def _cmd_bss2_map(args: argparse.Namespace) -> int:
    from ... import ir
    from ...passes import PassManager, pipeline
    from .report import format_report, placement_dot

    net = ir.load(args.network)
    text = args.pipeline or str(pipeline("bss2"))
    if args.first_fit:
        text = text.replace("place,", "place{strategy=first-fit},")
    result = PassManager(text, print_after_all=bool(args.print_ir_after_all)).run(net)
    config = result.annotations["hardware_config"]
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


def add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``bss2-map`` with the ``snncomp`` command."""
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
    p.add_argument("--print-ir-after-all", action="store_true", help="print the IR after every pass")
    p.set_defaults(func=_cmd_bss2_map)
