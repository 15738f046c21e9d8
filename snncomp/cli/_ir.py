"""``snncomp validate``, ``inspect``, ``compile``, ``passes`` and ``schema``: the network IR and the pass pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ._types import positive_int

__all__ = ["add_commands"]


def _cmd_validate(args: argparse.Namespace) -> int:
    from .. import ir

    net = ir.load(args.network)
    print(f"{args.network}: valid (network '{net.name}', {len(net.nodes)} populations, {len(net.edges)} projections)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .. import ir
    from ._inspect import inspect_network

    net = ir.load(args.network)
    if args.text:
        print(ir.format(net))
        return 0
    inspect_network(net, spikes_per_neuron=args.spikes_per_neuron)
    if args.target:
        # The target's own view (placement, partitions, ...) through its report hook; this module names no target.
        from .. import passes

        options = dict(_option(o) for o in args.option)
        result = passes.pipeline(args.target, **options).run(net)
        plugin = _plugin(args.target)
        if plugin is not None and plugin.report is not None:
            print(plugin.report(result))
    elif args.option:
        raise PipelineError("--option sets a pass option of --target's pipeline: give --target too")
    return 0


def _option(text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise PipelineError(f"--option takes KEY=VALUE (a pass option of the target's pipeline), got {text!r}")
    return key.strip(), value.strip()


def _cmd_compile(args: argparse.Namespace) -> int:
    from .. import ir, passes

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
    from ..errors import TargetError
    from ..targets import get

    try:
        return get(target)
    except TargetError:
        return None


def _cmd_passes(args: argparse.Namespace) -> int:
    from .. import passes

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

    from .. import ir

    text = json.dumps(ir.json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``validate``, ``inspect``, ``compile``, ``passes`` and ``schema`` to the CLI's sub-parsers."""
    p = sub.add_parser("validate", help="check a network JSON file and report every problem")
    p.add_argument("network", help="network IR JSON file")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("inspect", help="tables of a network's populations, projections, structure and schedule")
    p.add_argument("network", help="network IR JSON file")
    p.add_argument("--text", action="store_true", help="print the IR text form instead of tables")
    p.add_argument("--spikes-per-neuron", type=positive_int, default=None, help="spike bound for unbounded populations")
    p.add_argument("--target", help="also run this target's pipeline and print its report (e.g. bss2: placement)")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a pass option of --target's pipeline, e.g. max_partitions=2 (repeatable)",
    )
    p.set_defaults(func=_cmd_inspect)

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
