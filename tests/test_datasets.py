"""Yin-Yang dataset: geometry, determinism, balance, splits."""

from __future__ import annotations

import numpy as np
import pytest

from snncomp.datasets import yinyang, yinyang_class, yinyang_splits


def test_class_geometry() -> None:
    # Dot centres, the two halves far from the dots, and points inside each small eye.
    xs = np.array([0.25, 0.75, 0.5, 0.5, 0.25 + 0.05, 0.75 - 0.05, 0.25 + 0.2, 0.75 - 0.2])
    ys = np.array([0.5, 0.5, 0.9, 0.1, 0.5, 0.5, 0.5, 0.5])
    assert yinyang_class(xs, ys).tolist() == [2, 2, 1, 0, 2, 2, 1, 0]


def test_symmetry_swaps_yin_and_yang() -> None:
    # The symbol is point-symmetric about the centre: rotating by 180 degrees swaps yin and yang.
    data = yinyang(2000, seed=1)
    x, y = data.points.T
    c = yinyang_class(x, y)
    c_rot = yinyang_class(1.0 - x, 1.0 - y)
    swapped = np.select([c == 0, c == 1], [1, 0], 2)
    boundary = np.isclose(np.hypot(x - 0.25, y - 0.5), 0.25) | np.isclose(np.hypot(x - 0.75, y - 0.5), 0.25)
    assert np.mean((c_rot == swapped) | boundary) > 0.999


def test_samples_are_inside_disc_with_their_class_and_deterministic() -> None:
    a = yinyang(3000, seed=7)
    assert np.all(np.hypot(a.points[:, 0] - 0.5, a.points[:, 1] - 0.5) <= 0.5)
    assert np.array_equal(yinyang_class(a.points[:, 0], a.points[:, 1]), a.labels)
    b = yinyang(3000, seed=7)
    assert np.array_equal(a.points, b.points) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.points, yinyang(3000, seed=8).points)
    counts = np.bincount(a.labels, minlength=3)
    assert counts.min() > 900  # balanced in expectation: 1000 ± a few sigma


def test_features_and_splits() -> None:
    train, val, test = yinyang_splits(seed=0)
    assert (len(train), len(val), len(test)) == (5000, 1000, 1000)
    f = train.features
    assert f.shape == (5000, 4)
    np.testing.assert_allclose(f[:, 2], 1.0 - f[:, 0])
    assert not np.array_equal(train.points[:1000], val.points)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        yinyang(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="r_small"):
        yinyang(10, r_small=0.3)
