"""Trial-to-trial noise of ``bss2-mock`` runs: which draw a run gets (``trial``, ``key`` or the counter).

``trial`` (an integer, traced or not) picks one draw of the sequence fixed by ``trial_seed``; ``key``
(a JAX PRNG key) picks a draw directly; with neither, the executable's counter advances on every call.
Inside ``jit`` that counter is read once, when the function is traced, which :func:`draw` warns about.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ....runtime import InputError
from ._config import MockConfig

__all__ = ["draw", "noise_scales", "staged"]


def staged(*trees: Any) -> bool:
    """Whether any leaf is staged out by ``jit`` (possibly under ``grad``/``vmap``), its value not known yet."""
    for leaf in jax.tree_util.tree_leaves(trees):
        for _ in range(16):  # unwrap grad/vmap tracers down to the value they carry
            if not isinstance(leaf, jax.core.Tracer):
                break
            if "Jaxpr" in type(leaf).__name__:
                return True
            leaf = getattr(leaf, "primal", getattr(leaf, "val", None))
    return False


def draw(
    mock: MockConfig,
    trial_seed: int,
    trial: Any,
    key: Any,
    counter: int,
    constant: Callable[..., Any],
    values: tuple[Any, ...],
    stacklevel: int,
) -> tuple[Any, Any, dict[str, Any], int]:
    """The run's noise draw: ``(key, trial, rerun, counter)``.

    ``key``/``trial`` go to the engine (the root key of ``trial_seed`` with the trial index, or the
    given key and ``None``: the per-sample keys are split inside the run, no PRNG work on the host);
    ``rerun`` the keyword that repeats the same draw (should the readout buffers grow); ``counter`` the
    executable's trial counter afterwards. ``constant`` is the executable's device-constant cache,
    ``values`` the run's parameters and inputs (to tell whether ``jit`` stages them out), ``stacklevel``
    that of the warning as seen from here.
    """
    if key is not None and trial is not None:
        raise InputError("bss2-mock run: pass trial= or key= to choose the trial-to-trial noise, not both")
    if key is None and trial is None:
        if mock.has_trial_noise and staged(*values):
            warnings.warn(
                "bss2-mock: run inside jit without trial= or key=: the trial-to-trial noise is drawn when the "
                "function is traced, so every call of the compiled function repeats the same draw; pass "
                "trial=<int array> or key=<PRNG key> as an argument of the jitted function for fresh noise",
                stacklevel=stacklevel,
            )
        trial = counter
        counter += 1
    rerun = {"key": key} if key is not None else {"trial": trial}  # the same draw, should the buffers grow
    # The per-sample keys are split inside the run (sample_keys): no PRNG work on the host.
    if key is None:
        key = constant(("root", trial_seed), None, None, lambda: jax.random.PRNGKey(trial_seed))
        trial = np.int32(trial) if isinstance(trial, (int, np.integer)) else trial
    else:
        trial = None
    return key, trial, rerun, counter


def noise_scales(mock: MockConfig, fpga_clock: float) -> list[float]:
    """The engine's noise scales: timing jitter and readout delay in FPGA ticks, threshold noise."""
    return [mock.jitter * fpga_clock, mock.readout_delay * fpga_clock, mock.threshold_noise]
