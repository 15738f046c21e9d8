"""BrainScaleS-2 target: chip model, lowering passes, ``HardwareConfig``, checks and reports.

The targets ``bss2`` and ``bss2-mock`` are plug-ins (:mod:`._plugin`, listed in
:mod:`snncomp.targets`): their pipeline, annotation checks, pictures, report and commands; the passes
live in :mod:`snncomp.targets.bss2.passes` and join the pass registry on first lookup. Heavier names
load lazily, among them the chip emulator (:mod:`snncomp.targets.bss2.mock`: ``compile_mock``,
``MockConfig``, ``MockExecutable``, ``PartitionedExecutable``) and the partition planner
(:mod:`.partition`: ``plan_partitions``; the ``partition`` pass, ``PartitionedConfig``).
"""

from __future__ import annotations

from typing import Any

from .. import register as _register
from ._plugin import CHIP, MOCK, PIPELINE

# Whoever imports the bss2 passes gets the targets loaded too, so that the annotations those passes
# write are checked and drawn by this package's hooks (snncomp.targets.loaded()).
_register(CHIP)
_register(MOCK)

_LAZY = {
    "ChipSpec": ("chip", "ChipSpec"),
    "HardwareConfig": ("config", "HardwareConfig"),
    "PartitionedConfig": ("config", "PartitionedConfig"),
    "PartitionPlan": ("partition", "PartitionPlan"),
    "plan_partitions": ("partition", "plan_partitions"),
    "ResourceError": ("errors", "ResourceError"),
    "ParameterError": ("errors", "ParameterError"),
    "ConfigError": ("errors", "ConfigError"),
    "Violation": ("errors", "Violation"),
    "WeightSaturationWarning": ("errors", "WeightSaturationWarning"),
    "LatencySkewWarning": ("errors", "LatencySkewWarning"),
    "ResourceReport": ("report", "ResourceReport"),
    "resource_report": ("report", "resource_report"),
    "format_report": ("report", "format_report"),
    "placement_dot": ("report", "placement_dot"),
    "dequantized_network": ("effective", "dequantized_network"),
    "effective_weights": ("effective", "effective_weights"),
    "realise": ("check", "realise"),
    "check_config": ("check", "check_config"),
    "check_annotations": ("check", "check_annotations"),
    # The emulator (target "bss2-mock") pulls in JAX, so it loads only when asked for.
    "MockConfig": ("mock", "MockConfig"),
    "MockExecutable": ("mock", "MockExecutable"),
    "compile_mock": ("mock", "compile_mock"),
    "PartitionedExecutable": ("mock", "PartitionedExecutable"),
    "compile_partitioned": ("mock", "compile_partitioned"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["PIPELINE", *sorted(_LAZY)]
