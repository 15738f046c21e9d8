"""The shared runtime: ``compile``, ``Executable``, ``Spikes``, ``Recording``.

::

    exe = snncomp.compile(net, target="jax", t_max=50e-3)
    x = snncomp.Spikes.from_lists([[0.0, 1e-3], [2e-3]], [[0, 3], [1]])   # a batch of 2 samples
    rec = exe.run({"x": x})
    rec.spikes["out"].to_first_spike_times(3)      # [2, 3], +inf where a neuron stayed silent
    rec.overflow["out"]                            # [2] bool

Conventions:

* Spike trains are :class:`Spikes`: ``times`` ``[..., E]`` and ``neurons``
  ``[..., E]`` (int32), sorted by time per sample, padded with ``times = +inf``,
  ``neurons = -1``; leading axes are the batch.
* The simulated window is ``[0, t_max)``. Input spikes at or after ``t_max``
  are ignored (they cannot influence the window) and nothing at or after
  ``t_max`` is produced.
* Inputs and parameters are validated on the host before the jitted run when
  they are concrete (names, shapes, times finite and ``>= 0``, neuron indices in
  range, padding consistent; weights finite, delays finite and ``>= 0``). When
  they are traced (the caller's ``jit``, ``grad``, ``vmap``, ``train.fit``) the
  same value checks are compiled into the program with ``equinox.error_if``: a
  bad value raises at run time with the eager check's message (without the
  sample and event, which only the host knows).
* Populations that a pass removed (``canonicalize`` drops those that reach no
  output) are named as removed, with the reason, when a recording, a trace
  request or a report is asked for them (:class:`~snncomp.errors.PopulationError`).
* Event buffers have the sizes the ``schedule`` pass chose (``max_spikes`` ×
  size, or ``spikes_per_neuron`` × size for unbounded populations). Exceeding
  one is never silent: ``Recording.overflow`` flags the population and sample,
  and ``run(..., on_overflow="raise")`` raises :class:`BufferOverflowError`.

Targets are looked up in a registry (:func:`register_target`), so other
targets (``bss2-mock``) plug in without touching this package.

The package holds the contract by responsibility: ``_spikes`` (``Spikes``, ``Populations``),
``_recording`` (``Trace``, ``Recording``, ``Report``), ``_params`` (``Params``, the parameters' PyTree),
``_executable`` (the abstract ``Executable``),
``_checks`` (the checks every target shares) and ``_compile`` (``compile`` and the target shims).
The submodules are private: import every name from ``snncomp.runtime``.
"""

from __future__ import annotations

from typing import Any

from .._jax_cache import configure_compilation_cache as configure_compilation_cache
from ..errors import BufferOverflowError, InputError
from ..errors import InputWarning as InputWarning
from ..errors import PopulationError as PopulationError
from ..errors import TargetError as TargetError
from ._checks import CollectedChecks as CollectedChecks
from ._checks import check_compile_options as check_compile_options
from ._checks import check_input_values as check_input_values
from ._checks import check_inputs as check_inputs
from ._checks import check_params as check_params
from ._checks import check_run_options as check_run_options
from ._checks import check_t_max as check_t_max
from ._checks import checked_in_jit as checked_in_jit
from ._checks import collect_checks as collect_checks
from ._checks import raise_input_error as raise_input_error
from ._checks import warn_if_inputs_beyond_window as warn_if_inputs_beyond_window
from ._compile import TargetFactory as TargetFactory
from ._compile import as_network as as_network
from ._compile import compile, register_target, targets  # noqa: A004 - the contract's name
from ._executable import Executable
from ._params import GROUPS as GROUPS
from ._params import Params
from ._params import with_groups as with_groups
from ._recording import Recording, Report, Trace
from ._recording import network_resources as network_resources
from ._recording import overflowed as overflowed
from ._recording import raise_if_overflowed as raise_if_overflowed
from ._spikes import Populations, Spikes
from ._spikes import _default_float as _default_float
from ._spikes import is_tracer as is_tracer
from ._spikes import population_problem as population_problem

# Compiled programs persist across processes (docs/performance.md, "First calls"): set before any compile
# (importing the submodules above compiles nothing).
configure_compilation_cache()

__all__ = [
    "BufferOverflowError",
    "Executable",
    "InputError",
    "Params",
    "Populations",
    "Recording",
    "Report",
    "Spikes",
    "Trace",
    "compile",
    "register_target",
    "targets",
]


def __getattr__(name: str) -> Any:
    # Compatibility alias for one release: JaxExecutable moved to the jax target
    # (snncomp.targets.jax_event.JaxExecutable); the runtime holds contracts only.
    if name == "JaxExecutable":
        from importlib import import_module

        return import_module("snncomp.targets.jax_event._executable").JaxExecutable
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
