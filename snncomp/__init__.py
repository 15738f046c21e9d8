"""snncomp: a compiler for spiking neural networks.

Declare a network with :class:`snncomp.Network` (or load JSON / NIR), get a
typed IR (:mod:`snncomp.ir`), lower it with compiler passes, run it on the JAX
event-driven simulator or the BrainScaleS-2 target.
"""

from . import errors, init, ir
from .dsl import Network, Population
from .errors import (
    BufferOverflowError,
    DSLError,
    InputError,
    IRError,
    PassError,
    PipelineError,
    SnnCompError,
    TargetError,
)

__version__ = "0.1.0"

# Heavy parts (JAX runtime, passes) load on first use, so `import snncomp` stays fast.
_LAZY = {
    "compile": ("snncomp.runtime", "compile"),
    "Spikes": ("snncomp.runtime", "Spikes"),
    "Recording": ("snncomp.runtime", "Recording"),
    "Executable": ("snncomp.runtime", "Executable"),
    "Params": ("snncomp.runtime", "Params"),
    "pipeline": ("snncomp.passes", "pipeline"),
    "passes": ("snncomp.passes", None),
    # Submodules, so that `import snncomp; snncomp.train.fit(...)` works without importing them first.
    "train": ("snncomp.train", None),
    "losses": ("snncomp.losses", None),
    "encode": ("snncomp.encode", None),
    "datasets": ("snncomp.datasets", None),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'snncomp' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BufferOverflowError",
    "DSLError",
    "Executable",
    "IRError",
    "InputError",
    "Network",
    "Params",
    "PassError",
    "PipelineError",
    "Population",
    "Recording",
    "SnnCompError",
    "Spikes",
    "TargetError",
    "__version__",
    "compile",
    "datasets",
    "encode",
    "errors",
    "init",
    "ir",
    "losses",
    "passes",
    "pipeline",
    "train",
]
