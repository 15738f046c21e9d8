"""The BrainScaleS-2 targets as plug-ins: ``bss2`` (the real chip, not reachable here) and ``bss2-mock``.

Both share the bss2 pipeline (placement, routing, 6-bit weights); their annotations (``chip``,
``hardware_config``, ...) are checked, drawn and reported by this package. Everything heavy is
imported on first use.
"""

from __future__ import annotations

from typing import Any

from .. import Target

PIPELINE = (
    "verify,infer-shapes,canonicalize,analyze-structure,map-parameters,split-sign,quantize,partition,place,route,"
    "verify-config"
)


def _check(graph: Any) -> list[str]:
    if "chip" not in graph.graph["ann"]:
        return []
    from .check import check_annotations

    return check_annotations(graph)


def _dot(graph: Any) -> list[str]:
    ann = graph.graph["ann"]
    config = ann.get("partitioned") or ann.get("hardware_config")
    if config is None:
        return []
    from .report import placement_dot_lines

    return placement_dot_lines(config)


def _report(result: Any) -> str:
    from .report import format_report

    return format_report(result)


def _save(result: Any, path: str) -> bool:
    # The chip configuration is the artifact of a bss2 compilation (one per partition where it has several).
    config = result.annotations.get("partitioned") or result.annotations.get("hardware_config")
    if config is None:
        return False
    config.save(path)
    return True


def _compile_mock(network: Any, **options: Any) -> Any:
    # compile_mock where the network fits one chip; partition by partition where it needs several
    from .mock import compile_partitioned

    return compile_partitioned(network, **options)


_SHARED: dict[str, Any] = {
    "pipeline": PIPELINE,
    "check_annotations": _check,
    "dot_lines": _dot,
    "report": _report,
    "save_artifact": _save,
    "cli": ("snncomp.targets.bss2._cli",),
    "pass_modules": ("snncomp.targets.bss2.passes",),
}

CHIP = Target(
    name="bss2",
    summary="BrainScaleS-2 analog neuromorphic chip (the real hardware)",
    unavailable=(
        "target 'bss2' is real BrainScaleS-2 hardware, which snncomp cannot reach from here; "
        "compile for the chip emulator with target='bss2-mock' instead"
    ),
    **_SHARED,
)
MOCK = Target(
    name="bss2-mock",
    compile=_compile_mock,
    summary="BrainScaleS-2 placed and routed, run on the chip emulator",
    **_SHARED,
)
