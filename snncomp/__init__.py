"""snncomp: a compiler for spiking neural networks.

Declare a network with :class:`snncomp.Network` (or load JSON / NIR), get a
typed IR (:mod:`snncomp.ir`), lower it with compiler passes, run it on the JAX
event-driven simulator or the BrainScaleS-2 target.
"""

from . import errors, init, ir
from .dsl import Network, Population
from .errors import DSLError, IRError, PassError, PipelineError, SnnCompError, TargetError

__version__ = "0.1.0"

__all__ = [
    "DSLError",
    "IRError",
    "Network",
    "PassError",
    "PipelineError",
    "Population",
    "SnnCompError",
    "TargetError",
    "__version__",
    "errors",
    "init",
    "ir",
]
