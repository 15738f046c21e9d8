"""The ``import-nir`` and ``export-nir`` sub-commands of the ``snncomp`` command.

``snncomp.cli`` calls :func:`add_commands` to register them. Like every
sub-command, each handler is ``(args) -> int`` and lets snncomp errors
propagate; the CLI prints them as one line (``nir`` itself is imported only
when a command runs).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, cast

__all__ = ["add_commands"]


def _cmd_import_nir(args: argparse.Namespace) -> int:
    from .. import ir
    from .nir import read_nir

    if args.tau_syn_ratio is not None or args.if_tau is not None:
        print(
            "warning: --tau-syn-ratio and --if-tau are deprecated and ignored: NIR LIF, LI and IF now import "
            "exactly (instantaneous synapses)",
            file=sys.stderr,
        )
    net = read_nir(
        args.nir_file,
        time_unit=args.time_unit,
        name=args.name,
        convention=args.convention,
        dt=args.dt,
    )
    ir.save(net, args.output)
    how = "" if args.convention == "nir" else f", {args.convention} convention, dt={net.metadata.get('nir.dt')!r} s"
    print(
        f"{args.nir_file}: imported network '{net.name}' ({len(net.nodes)} populations, "
        f"{len(net.edges)} projections{how}) -> {args.output}"
    )
    # Approximations change the dynamics slightly; say so where the user sees it, not only in metadata.
    # read_nir stores both as lists of strings.
    for line in cast("list[str]", net.metadata.get("nir.approximations", []) or []):
        print(f"note: approximation: {line}", file=sys.stderr)
    for line in cast("list[str]", net.metadata.get("nir.notes", []) or []):
        print(f"note: {line}", file=sys.stderr)
    return 0


def _cmd_export_nir(args: argparse.Namespace) -> int:
    from .. import ir
    from .nir import write_nir

    net = ir.load(args.network)
    write_nir(net, args.output)
    print(
        f"{args.network}: wrote NIR graph of network '{net.name}' ({len(net.nodes)} populations, "
        f"{len(net.edges)} projections, time in seconds) -> {args.output}"
    )
    return 0


def add_commands(subparsers: Any) -> None:
    """Register ``import-nir`` and ``export-nir`` on ``subparsers`` (from ``add_subparsers()``)."""
    from .nir import CONVENTIONS, TIME_UNITS

    p = subparsers.add_parser(
        "import-nir",
        help="convert a NIR file (.nir, HDF5) to a network IR JSON file",
        description="Import a NIR graph (CubaLIF, LIF, CubaLI, LI, IF, Linear, Affine, Scale, Delay, subgraphs). "
        "NIR files do not record their unit of time: give --time-unit. --convention undoes what a given "
        "library's exporter writes differently from NIR's equations (see docs/nir.md).",
    )
    p.add_argument("nir_file", help="NIR file written by nir.write (snnTorch, Norse, Sinabs, Spyx, snncomp, ...)")
    p.add_argument("-o", "--output", required=True, help="network IR JSON file to write")
    p.add_argument(
        "--time-unit",
        choices=sorted(TIME_UNITS),
        default="s",
        help="unit of the file's time constants and delays (default: s)",
    )
    p.add_argument("--name", help="name of the network (default: the file's name)")
    p.add_argument(
        "--convention",
        default="nir",
        metavar="NAME",
        help=f"how the exporter wrote the file: {', '.join(CONVENTIONS)} (default: nir, NIR's equations literally)",
    )
    p.add_argument(
        "--dt",
        type=float,
        metavar="SECONDS",
        help="the exporter's time step where the file does not record it (defaults: snntorch 1e-4, norse 1e-3, "
        "sinabs 1e-3, spyx 1; rockpool: recovered from the file)",
    )
    # Deprecated: LIF/LI/IF import exactly now. Accepted (and ignored, with a warning) so old scripts run.
    p.add_argument("--tau-syn-ratio", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--if-tau", type=float, nargs=2, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_import_nir)

    p = subparsers.add_parser(
        "export-nir",
        help="convert a network IR JSON file to a NIR file (.nir, HDF5)",
        description="Export a network as a NIR graph (CubaLIF/CubaLI, Linear, Delay; time in seconds). "
        "t_refrac and max_spikes have no NIR equivalent and travel only as snncomp metadata.",
    )
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("-o", "--output", required=True, help="NIR file to write")
    p.set_defaults(func=_cmd_export_nir)
