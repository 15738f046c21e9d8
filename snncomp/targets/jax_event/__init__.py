"""The event-driven JAX simulator (target ``"jax"``).

Continuous time, exact spike times: the simulator jumps from event to event
with the closed-form solution of current-based LIF neurons
(``docs/models.md``). A network that went through ``snncomp.pipeline("jax")``
is lowered to an :class:`EventProgram`: ordered stages, each either
*layer-parallel* (single-spike populations solved in parallel from sorted
upstream spikes) or an *event queue* (a ``lax.while_loop`` over events for
recurrence and multi-spike neurons), over fixed-size spike buffers.

Modules: ``_dynamics`` (closed-form evolution), ``_solver`` (next-spike
solvers), ``_events`` (buffers, projections, merged deliveries), ``_layer`` and
``_queue`` (the two schedules), ``_trace`` (traces on a time grid),
``_program`` (lowering and the program), ``_executable`` (``JaxExecutable``, the
runtime contract's implementation, and ``compile_jax``), ``_plugin`` (the target's
entry in :mod:`snncomp.targets`).
"""

from ._adjoint import AbstractAdjoint, AutodiffAdjoint, EventPropAdjoint, get_adjoint, replay
from ._dynamics import NeuronParams, free_coefficients, free_evolve
from ._events import EdgeSpec, Incoming, SpikeBuffer
from ._executable import JaxExecutable, compile_jax
from ._layer import LayerParallelStage, first_spikes
from ._program import EventProgram, ProgramOutput, initial_params, lower
from ._queue import EventQueueStage
from ._solver import (
    AbstractCrossingSolver,
    BracketedNewtonSolver,
    LambertSolver,
    Peak,
    QuadraticSolver,
    choose_solver,
)
from ._stage import AbstractStage, PopulationPlan

__all__ = [
    "AbstractAdjoint",
    "AbstractCrossingSolver",
    "AbstractStage",
    "AutodiffAdjoint",
    "BracketedNewtonSolver",
    "EdgeSpec",
    "EventProgram",
    "EventPropAdjoint",
    "EventQueueStage",
    "Incoming",
    "JaxExecutable",
    "LambertSolver",
    "LayerParallelStage",
    "NeuronParams",
    "Peak",
    "PopulationPlan",
    "ProgramOutput",
    "QuadraticSolver",
    "SpikeBuffer",
    "choose_solver",
    "compile_jax",
    "first_spikes",
    "free_coefficients",
    "free_evolve",
    "get_adjoint",
    "initial_params",
    "lower",
    "replay",
]
