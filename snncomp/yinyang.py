"""Compatibility alias of :mod:`snncomp.apps.yinyang`, kept for one release: import from there.

The Yin-Yang application moved to the package ``snncomp/apps/yinyang/`` (config, data, model, loss,
evaluate, loop, artifacts, plots). Every name this module had, public or private, is re-exported
here unchanged (the same objects), so ``snncomp.yinyang.train`` and ``from snncomp.yinyang import
YinYangConfig`` keep working.
"""

from __future__ import annotations

from .apps.yinyang import _EVAL_CHUNK as _EVAL_CHUNK
from .apps.yinyang import _EVALUATORS as _EVALUATORS
from .apps.yinyang import (
    N_CLASSES,
    N_INPUTS,
    Readout,
    YinYangConfig,
    YinYangError,
    YinYangResult,
    accuracy_fn,
    bss2_available,
    build_network,
    compile_for,
    encode,
    evaluate_on,
    fake_quantize,
    health_on,
    loss_fn,
    optimizer,
    points_of,
    prepare_data,
    train,
    write_artifacts,
    write_plots,
)
from .apps.yinyang import _classes as _classes
from .apps.yinyang import _Evaluator as _Evaluator
from .apps.yinyang import _evaluator as _evaluator
from .apps.yinyang import _gain_noise as _gain_noise
from .apps.yinyang import _pyplot as _pyplot
from .apps.yinyang import _readout_of as _readout_of
from .apps.yinyang import _software_quantization as _software_quantization
from .apps.yinyang import _trials as _trials
from .apps.yinyang import _value_terms as _value_terms
from .apps.yinyang import _WithParams as _WithParams

__all__ = [
    "N_CLASSES",
    "N_INPUTS",
    "Readout",
    "YinYangConfig",
    "YinYangError",
    "YinYangResult",
    "accuracy_fn",
    "bss2_available",
    "build_network",
    "compile_for",
    "encode",
    "evaluate_on",
    "fake_quantize",
    "health_on",
    "loss_fn",
    "optimizer",
    "points_of",
    "prepare_data",
    "train",
    "write_artifacts",
    "write_plots",
]
