"""The ``snncomp`` command line.

Each sub-command is a function ``_cmd_<name>(args) -> int``. Exit codes and errors:

* 0: success.
* 2: a user error: bad arguments (argparse's usage errors), a missing or unreadable file,
  malformed JSON or NIR, a network or input that does not fit, an unknown target. It prints
  one line on stderr, ``snncomp CMD: error: ...`` (an error listing several problems adds one
  indented line per problem). Errors from snncomp (:class:`~snncomp.errors.SnnCompError`) print
  their message; a ``ValueError``, ``TypeError``, ``KeyError``, ``IndexError`` or ``OSError``
  that a command let through prints its type and message and suggests ``--debug``.
* 1: an internal error: any other exception, a bug in snncomp. It prints one line,
  ``snncomp CMD: internal error: ...``, asking for a report with the ``--debug`` traceback.
* 130: interrupted (Ctrl-C).

``--debug`` shows the full traceback of any error instead.

The commands live one group per module: ``_ir`` (validate, inspect, compile, passes, schema),
``_targets`` (targets), ``_run`` (run), ``_train`` (train, demo); ``snncomp.interop._nir_cli`` adds
import-nir and export-nir, and each target adds its own (``snncomp.targets.Target.cli``). Shared
argument types are in ``_types``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import SnnCompError

__all__ = ["EXIT_INTERNAL_ERROR", "EXIT_USER_ERROR", "build_parser", "main"]


# Feature modules that add sub-commands through ``add_commands(subparsers)``; targets add theirs
# through their plug-ins (snncomp.targets.Target.cli).
_COMMAND_MODULES = (
    "snncomp.cli._run",
    "snncomp.interop._nir_cli",
    "snncomp.cli._train",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``snncomp`` command."""
    import importlib

    from .. import __version__
    from . import _ir, _targets

    parser = argparse.ArgumentParser(
        prog="snncomp",
        description="snncomp: compile spiking neural networks to an event-driven JAX simulator or BrainScaleS-2.",
    )
    parser.add_argument("--version", action="version", version=f"snncomp {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _ir.add_commands(sub)
    _targets.add_commands(sub)

    # A module listed but missing is a packaging bug: let the import error show.
    for module in dict.fromkeys((*_COMMAND_MODULES, *_targets.command_modules())):  # targets may share a module
        importlib.import_module(module).add_commands(sub)
    return parser


# Exceptions that a command lets through for bad input (files, JSON, values): a user error, exit 2.
# Anything else is a bug in snncomp: exit 1.
_USER_ERRORS: tuple[type[BaseException], ...] = (SnnCompError, ValueError, TypeError, KeyError, IndexError, OSError)
EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 1


def _error_message(exc: BaseException) -> str:
    """``exc``'s message as one line, then its further lines (if any) indented below it."""
    text = str(exc).strip() or type(exc).__name__
    first, *rest = text.splitlines()
    return "\n".join([first, *(line if line.startswith(" ") else f"  {line}" for line in rest if line.strip())])


def _report_error(command: str, exc: BaseException) -> int:
    """Print ``exc`` as ``snncomp COMMAND: error: ...`` and return the exit code."""
    prefix = f"snncomp {command}"
    if isinstance(exc, SnnCompError):
        print(f"{prefix}: error: {_error_message(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if isinstance(exc, OSError) and exc.strerror:  # a file that cannot be read or written
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"{prefix}: error: {where}{exc.strerror}", file=sys.stderr)
        return EXIT_USER_ERROR
    first, _, rest = _error_message(exc).partition("\n")
    if isinstance(exc, _USER_ERRORS):
        line = f"{prefix}: error: {type(exc).__name__}: {first} (run with --debug for the traceback)"
        code = EXIT_USER_ERROR
    else:
        line = (
            f"{prefix}: internal error: {type(exc).__name__}: {first} (a bug in snncomp: please report it "
            f"with the traceback that 'snncomp --debug {command} ...' prints)"
        )
        code = EXIT_INTERNAL_ERROR
    print(line + (f"\n{rest}" if rest else ""), file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``snncomp`` console script: 0 on success, 2 on a user error, 1 on a bug."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        return 130
    except Exception as exc:
        if args.debug:
            raise
        return _report_error(args.command, exc)
