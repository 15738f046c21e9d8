"""The Yin-Yang run's configuration (:class:`YinYangConfig`), its result record and its error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import SnnCompError

N_CLASSES = 3
N_INPUTS = 5  # (x, y, 1 - x, 1 - y) and the bias


@dataclass(frozen=True)
class YinYangConfig:
    """Every knob of a Yin-Yang run (times in seconds)."""

    hidden: int = 120
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    n_train: int = 5000
    n_val: int = 1000
    n_test: int = 1000
    t_max: float = 0.03
    t_early: float = 1e-3
    t_late: float = 9e-3
    bias_time: float = 0.0
    tau_mem: float = 10e-3
    tau_syn: float = 5e-3
    ce_tau: float = 2e-3
    reg_weight: float = 0.01
    rescue_weight: float = 10.0
    hidden_rescue_weight: float = 1.0
    input_repeat: int = 1
    weight_bound: float | None = None
    weight_scale: float | None = None
    gain_noise: float = 0.0
    pretrain_epochs: int = 0
    finetune_learning_rate: float = 3e-5
    calibrate: bool = True
    average_epochs: int = 10
    test_trials: int = 5

    @classmethod
    def chip_ready(cls, **overrides: Any) -> YinYangConfig:
        """The network and training made for BrainScaleS-2 (the ``bss2-mock`` target and deployment).

        Each input on 5 channels (so 5 synapses carry its weight), every weight kept within one
        synapse's range (63 / 58) and trained quantization-aware at the chip's 58 steps per unit.
        On ``bss2-mock`` training first runs ``pretrain_epochs`` (100) in software, then fine-tunes
        in the loop at ``finetune_learning_rate``. ``gain_noise`` (default 0) would add per-neuron
        gain noise in software training; measured over 5 seeds (0.5 % and 1 % on a calibrated chip,
        5 % on an uncalibrated one) it did not raise the deployed accuracy (``docs/results.md``).
        """
        from ...targets.bss2.chip import ChipSpec

        chip = ChipSpec()
        base: dict[str, Any] = {
            "input_repeat": 5,
            "weight_bound": chip.weight_bound,
            "weight_scale": chip.default_weight_scale,
            "pretrain_epochs": 100,
        }
        return cls(**{**base, **overrides})

    @property
    def n_inputs(self) -> int:
        """Input channels: the four features and the bias, each repeated ``input_repeat`` times."""
        return N_INPUTS * self.input_repeat


class YinYangError(SnnCompError):
    """A Yin-Yang run could not be set up (e.g. an unavailable target)."""


@dataclass
class YinYangResult:
    """What :func:`train` measured and wrote."""

    target: str
    config: YinYangConfig
    records: list[dict[str, float]]
    test_accuracy: float
    best_epoch: int | None
    wall_seconds: float
    compile_seconds: float
    samples_per_s: float
    params: Any = field(repr=False, default=None)
    exe: Any = field(repr=False, default=None)
    files: list[str] = field(default_factory=list)
    pretrain: dict[str, Any] | None = None
    start_val_accuracy: float | None = None
    selected: str = ""
    test_trials: list[float] = field(default_factory=list)
    averaged: dict[str, Any] | None = None
    averaged_params: Any = field(repr=False, default=None)

    def metrics(self) -> dict[str, Any]:
        """The contents of ``metrics.json``."""
        return {
            "task": "yinyang",
            "target": self.target,
            "config": asdict(self.config),
            "epochs": self.records,
            "best_epoch": self.best_epoch,
            "selected": self.selected,
            "averaged": self.averaged,
            "final_test_accuracy": self.test_accuracy,
            "test_trials": self.test_trials,
            "wall_seconds": self.wall_seconds,
            "compile_seconds": self.compile_seconds,
            "samples_per_s": self.samples_per_s,
            "time_to_95_test_s": next(
                (r["elapsed_s"] for r in self.records if r.get("test_accuracy", 0.0) >= 0.95), None
            ),
            "pretrain": self.pretrain,
            "start_val_accuracy": self.start_val_accuracy,
            "calibration": None if getattr(self.exe, "calibration", None) is None else self.exe.calibration.text(),
        }
