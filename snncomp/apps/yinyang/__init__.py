"""Yin-Yang end to end: network, encoding, training, evaluation, artifacts and plots.

The task (Kriener, Göltz & Petrovici, NICE 2022) classifies points of the unit square into yin,
yang and dot from the features ``(x, y, 1 - x, 1 - y)``. Here each feature is latency coded into
one input spike in ``[t_early, t_late]`` plus a bias spike at 0, each on ``input_repeat`` (5)
channels, a ``25 -> hidden -> 3`` network of LIF neurons spiking at most once is trained with
EventProp, and the class is the output neuron that spikes first. Repeating the inputs and keeping
every weight within one BrainScaleS-2 synapse's range (``weight_bound``, 63 / 58) makes the same
network and weights run on the chip (``bss2-mock``) as in software. :func:`train` does it all
and writes the artifacts; the ``snncomp train yinyang`` and ``snncomp demo`` commands and
``examples/yinyang.py`` are thin layers over it.

Modules: :mod:`.config` (``YinYangConfig``, the result record), :mod:`.data` (encoding, splits),
:mod:`.model` (the network, the names it is read by, compiling, quantization), :mod:`.loss`
(loss and accuracy), :mod:`.evaluate` (whole-split evaluation), :mod:`.loop` (:func:`train`),
:mod:`.artifacts` and :mod:`.plots` (the files a run writes).
"""

from __future__ import annotations

from .artifacts import write_artifacts
from .config import N_CLASSES, N_INPUTS, YinYangConfig, YinYangError, YinYangResult
from .data import encode, points_of, prepare_data
from .evaluate import _EVAL_CHUNK as _EVAL_CHUNK
from .evaluate import _EVALUATORS as _EVALUATORS
from .evaluate import _Evaluator as _Evaluator
from .evaluate import _evaluator as _evaluator
from .evaluate import _trials as _trials
from .evaluate import evaluate_on, health_on
from .loop import optimizer, train
from .loss import _value_terms as _value_terms
from .loss import accuracy_fn, loss_fn
from .model import Readout, bss2_available, build_network, compile_for, fake_quantize
from .model import _gain_noise as _gain_noise
from .model import _readout_of as _readout_of
from .model import _software_quantization as _software_quantization
from .model import _WithParams as _WithParams
from .plots import _classes as _classes
from .plots import _pyplot as _pyplot
from .plots import write_plots

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
