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
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_types import positive_int
from .errors import PipelineError, SnnCompError


def _cmd_validate(args: argparse.Namespace) -> int:
    from . import ir

    net = ir.load(args.network)
    print(f"{args.network}: valid (network '{net.name}', {len(net.nodes)} populations, {len(net.edges)} projections)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from . import ir
    from ._inspect import inspect_network

    net = ir.load(args.network)
    if args.text:
        print(ir.format(net))
        return 0
    inspect_network(net, spikes_per_neuron=args.spikes_per_neuron)
    return 0


def _cmd_compile(args: argparse.Namespace) -> int:
    from . import ir, passes

    net = ir.load(args.network)
    if args.passes:
        if args.spikes_per_neuron is not None:
            raise PipelineError(
                "--spikes-per-neuron does not apply to --passes; give it as a pass option there, "
                f"e.g. schedule{{spikes_per_neuron={args.spikes_per_neuron}}}"
            )
        passes.pipeline(args.target)  # the target still names the report: check it
        pipe = passes.Pipeline(args.passes)
    else:
        opts = {} if args.spikes_per_neuron is None else {"spikes_per_neuron": args.spikes_per_neuron}
        pipe = passes.pipeline(args.target, **opts)
    manager = passes.PassManager(
        pipe.passes,
        verify_each=not args.no_verify,
        print_after_all=args.print_ir_after_all,
        dump_dir=args.dump_dir,
        keep_stages=bool(args.dot),
    )
    result = manager.run(net)
    if args.dot:
        out = Path(args.dot)
        out.mkdir(parents=True, exist_ok=True)
        (out / "00-input.dot").write_text(passes.graph_to_dot(passes.to_graph(net)))
        for i, (name, g) in enumerate(result.stages, start=1):
            (out / f"{i:02d}-{name}.dot").write_text(passes.graph_to_dot(g))
        print(f"wrote {len(result.stages) + 1} dot files to {out}", file=sys.stderr)
    plugin = _plugin(args.target)
    # A target may have its own artifact (the chip configuration); otherwise the compiled IR.
    own = plugin is not None and plugin.save_artifact is not None
    if args.output and not (own and plugin.save_artifact(result, args.output)):
        ir.save(result.network, args.output)
    if not args.print_ir_after_all and not args.quiet:
        print(result.text())
    if args.timings or args.remarks:
        for r in result.remarks if args.remarks else []:
            print(f"remark: {r}", file=sys.stderr)
        for t in result.timings if args.timings else []:
            print(
                f"time: {t.name:<20} {t.seconds * 1e3:8.3f} ms (+ verify {t.verify_seconds * 1e3:.3f} ms)",
                file=sys.stderr,
            )
    if plugin is not None and plugin.report is not None:
        print(plugin.report(result))
    return 0


def _plugin(target: str) -> Any:
    """The target's plug-in, or ``None`` for a pipeline registered by name only."""
    from .errors import TargetError
    from .targets import get

    try:
        return get(target)
    except TargetError:
        return None


def _cmd_targets(args: argparse.Namespace) -> int:
    from .targets import every

    for target in every():
        state = "available" if target.compile is not None else "not available here"
        print(f"{target.name:<12} {state:<20} {target.summary}")
    return 0


def _cmd_passes(args: argparse.Namespace) -> int:
    from . import passes

    for name, cls in passes.registry().items():
        opts = ", ".join(f"{n}: {t} = {d!r}" for n, t, d in passes.pass_options(cls))
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        print(f"{name:<20} {doc}")
        if opts:
            print(f"{'':<20} options: {opts}")
        if cls.requires or cls.ensures:
            print(f"{'':<20} requires: {', '.join(cls.requires) or '-'}; ensures: {', '.join(cls.ensures) or '-'}")
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


# Feature modules that add sub-commands through ``add_commands(subparsers)``; targets add theirs
# through their plug-ins (snncomp.targets.Target.cli).
_COMMAND_MODULES = (
    "snncomp._run_cli",
    "snncomp.interop._nir_cli",
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

    p = sub.add_parser("inspect", help="tables of a network's populations, projections, structure and schedule")
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("--text", action="store_true", help="print the IR text form instead of tables")
    p.add_argument("--spikes-per-neuron", type=positive_int, default=None, help="spike bound for unbounded populations")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("targets", help="list the targets (built in and installed plug-ins)")
    p.set_defaults(func=_cmd_targets)

    p = sub.add_parser("compile", help="run a target's pass pipeline and show the lowered network")
    p.add_argument("network", help="network IR JSON file")
    p.add_argument(
        "--target", default="jax", help="jax (default), bss2, bss2-mock, or a plug-in target (see: snncomp targets)"
    )
    p.add_argument("--passes", help='explicit pipeline, e.g. "verify,canonicalize,analyze-structure,schedule"')
    p.add_argument("--spikes-per-neuron", type=positive_int, default=None, help="spike bound for unbounded populations")
    p.add_argument("--print-ir-after-all", action="store_true", help="print the graph after every pass")
    p.add_argument("--dot", metavar="DIR", help="write a Graphviz .dot file per stage into DIR")
    p.add_argument("--dump-dir", metavar="DIR", help="write every stage as .txt, .dot and .json into DIR")
    p.add_argument(
        "-o", "--output", metavar="OUT.json", help="write the artifact: the compiled IR (jax) or HardwareConfig (bss2)"
    )
    p.add_argument("--no-verify", action="store_true", help="do not re-verify the graph after each pass")
    p.add_argument("--timings", action="store_true", help="print the time of each pass")
    p.add_argument("--remarks", action="store_true", help="print what each pass changed")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the final graph")
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("passes", help="list every registered pass with its options")
    p.set_defaults(func=_cmd_passes)

    p = sub.add_parser("schema", help="print the IR's JSON schema")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_schema)

    import importlib

    from .targets import every

    # A module listed but missing is a packaging bug: let the import error show.
    target_modules = tuple(m for target in every() for m in target.cli)
    for module in dict.fromkeys((*_COMMAND_MODULES, *target_modules)):  # targets may share a module
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
