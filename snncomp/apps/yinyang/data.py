"""The Yin-Yang data: the standard splits, latency coded into input spikes."""

from __future__ import annotations

from typing import Any

import numpy as np

import snncomp

from ...datasets import YinYang, yinyang_splits
from ...encode import latency_times
from .config import YinYangConfig


def encode(
    data: YinYang,
    config: YinYangConfig = YinYangConfig(),  # noqa: B008 (frozen, so shared safely)
) -> tuple[dict[str, Any], np.ndarray]:
    """``({"x": Spikes}, labels)``: the four features latency coded, then the bias, each ``input_repeat`` times."""
    # For r_big = 0.5 the features already lie in [0, 1]; rescale in general.
    values = data.features / (2 * data.r_big)
    r = config.input_repeat
    times = latency_times(values, t_early=config.t_early, t_late=config.t_late, duplicate=r)
    # The bias is repeated like the features: on the chip one synapse could not carry its weight.
    times = np.concatenate([times, np.full((times.shape[0], r), config.bias_time)], axis=1)
    return {"x": snncomp.Spikes.from_first_spike_times(times.astype(np.float32))}, np.asarray(data.labels, np.int32)


def prepare_data(
    config: YinYangConfig = YinYangConfig(),  # noqa: B008 (frozen, so shared safely)
) -> dict[str, tuple[dict[str, Any], np.ndarray]]:
    """Encoded ``train``/``val``/``test`` splits of the standard dataset for ``config.seed``."""
    train_set, val_set, test_set = yinyang_splits(
        config.seed, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test
    )
    return {"train": encode(train_set, config), "val": encode(val_set, config), "test": encode(test_set, config)}


def points_of(config: YinYangConfig, split: str) -> YinYang:
    """The raw points of one split (for plots)."""
    splits = yinyang_splits(config.seed, n_train=config.n_train, n_val=config.n_val, n_test=config.n_test)
    return dict(zip(("train", "val", "test"), splits))[split]
