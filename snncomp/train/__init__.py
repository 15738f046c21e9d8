"""Training: ``fit`` an executable's parameters with optax, deterministically.

``fit`` works with anything that has ``params`` (a PyTree) and a pure, differentiable
``apply(params, inputs) -> Recording``; both targets' executables do. The loss is
``loss(recording, targets) -> scalar`` (mean over the batch). Gradients come from the target's
adjoint (EventProp on ``jax``; hardware-in-the-loop on ``bss2-mock``).

Determinism: the order of samples in epoch ``e`` comes from ``numpy.random.default_rng([seed, e])``,
so a run resumed from a checkpoint continues exactly as an uninterrupted one. The last incomplete
batch of an epoch is dropped (fixed shapes: one compilation); evaluation uses every sample.

The package's modules are private, split by responsibility: ``_data`` (the data, the executable
protocol, batches and their placement on devices), ``_checkpoints``, ``_checks`` (in-program checks
reported as ``InputError``), ``_evaluate``, ``_step`` (``make_step``, ``clip_weights``), ``_fit``
(``fit``, ``History``) and ``_progress``. Import every name from ``snncomp.train``.
"""

from __future__ import annotations

from ._checkpoints import _flatten as _flatten
from ._checkpoints import _latest_checkpoint as _latest_checkpoint
from ._checkpoints import load_checkpoint, save_checkpoint
from ._checks import _CHECK_MESSAGE as _CHECK_MESSAGE
from ._checks import _Checks as _Checks
from ._checks import _DropCheckTracebacks as _DropCheckTracebacks
from ._checks import _reported_checks as _reported_checks
from ._data import Data as Data
from ._data import Trainable, batch_sharding
from ._data import _global_array as _global_array
from ._data import _n_samples as _n_samples
from ._data import _place as _place
from ._data import _take as _take
from ._data import _takes_key as _takes_key
from ._evaluate import _EVAL_CACHE as _EVAL_CACHE
from ._evaluate import _metrics_fn as _metrics_fn
from ._evaluate import evaluate
from ._fit import History, fit
from ._progress import _Progress as _Progress
from ._step import TrainStep, clip_weights, make_step
from ._step import _any_overflow as _any_overflow
from ._step import _build_step as _build_step
from ._step import _restrict as _restrict

__all__ = [
    "History",
    "TrainStep",
    "Trainable",
    "batch_sharding",
    "clip_weights",
    "evaluate",
    "fit",
    "load_checkpoint",
    "make_step",
    "save_checkpoint",
]
