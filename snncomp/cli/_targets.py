"""``snncomp targets``, and the command modules the targets contribute (``snncomp.targets.Target.cli``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_commands", "command_modules"]


def _cmd_targets(args: argparse.Namespace) -> int:
    from ..targets import every

    for target in every():
        state = "available" if target.compile is not None else "not available here"
        print(f"{target.name:<12} {state:<20} {target.summary}")
    return 0


def command_modules() -> tuple[str, ...]:
    """The modules whose ``add_commands(subparsers)`` add the targets' own commands, in the table's order."""
    from ..targets import every

    return tuple(m for target in every() for m in target.cli)


def add_commands(sub: Any) -> None:
    """Add ``targets`` to the CLI's sub-parsers."""
    p = sub.add_parser("targets", help="list the targets (built in and installed plug-ins)")
    p.set_defaults(func=_cmd_targets)
