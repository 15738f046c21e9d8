"""The ``snncomp`` command line.

Each sub-command is a function ``_cmd_<name>(args) -> int``. Errors from
snncomp print as one line on stderr and exit 1; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import SnnCompError


def _cmd_validate(args: argparse.Namespace) -> int:
    from . import ir

    net = ir.load(args.network)
    print(f"{args.network}: valid (network '{net.name}', {len(net.nodes)} populations, {len(net.edges)} projections)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import ir

    net = ir.load(args.network)
    print(ir.format(net))
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    import json

    from . import ir

    text = json.dumps(ir.json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


# Feature modules that add sub-commands through ``add_commands(subparsers)``.
_COMMAND_MODULES = (
    "snncomp._pass_cli",
    "snncomp._run_cli",
    "snncomp.interop._nir_cli",
    "snncomp.targets.bss2._cli",
    "snncomp._train_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``snncomp`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="snncomp",
        description="snncomp: compile spiking neural networks to an event-driven JAX simulator or BrainScaleS-2.",
    )
    parser.add_argument("--version", action="version", version=f"snncomp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check a network JSON file and report every problem")
    p.add_argument("network", help="network IR JSON file")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("inspect", help="print a network's populations, projections and structure")
    p.add_argument("network", help="network IR JSON file")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("schema", help="print the IR's JSON schema")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    import importlib

    for module in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not (exc.name and (module == exc.name or module.startswith(exc.name + "."))):
                # A real import error inside an existing module: show it.
                raise
            continue
        mod.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snncomp`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except SnnCompError as exc:
        if args.debug:
            raise
        print(f"snncomp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
