"""The ``jax`` target as a plug-in (:class:`snncomp.targets.Target`): the event-driven JAX simulator."""

from __future__ import annotations

from typing import Any

from .. import Target

PIPELINE = "verify,infer-shapes,canonicalize,analyze-structure,schedule"


def _compile(network: Any, **options: Any) -> Any:
    from ._executable import compile_jax

    return compile_jax(network, **options)


TARGET = Target(
    name="jax",
    compile=_compile,
    pipeline=PIPELINE,
    summary="event-driven JAX simulator: exact spike times, EventProp gradients",
)
