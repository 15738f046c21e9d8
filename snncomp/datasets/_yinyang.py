"""The Yin-Yang dataset (Kriener, Göltz & Petrovici, "The Yin-Yang dataset", NICE 2022).

Points ``(x, y)`` inside a disc of radius ``r_big`` centred at ``(r_big, r_big)`` are labelled by
the yin-yang symbol with dots of radius ``r_small``: 1 for the *yin* region (the upper half and the
left eye's surround), 0 for *yang*, 2 for the two dots — the published rule ``int(is_yin)``. As in
the paper, each sample first draws its class uniformly, then draws points uniformly in the
bounding square until one inside the disc has that class, so the classes are balanced in
expectation. Features are ``(x, y, 1 - x, 1 - y)`` (for ``r_big = 0.5``), which makes every input
carry information in both directions of latency coding; the bias is added by the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = ["YinYang", "yinyang", "yinyang_class", "yinyang_splits"]

CLASS_NAMES = ("yang", "yin", "dot")


def yinyang_class(x: np.ndarray, y: np.ndarray, r_small: float = 0.1, r_big: float = 0.5) -> np.ndarray:
    """Class of each point (0 yang, 1 yin, 2 dot); points must lie inside the big disc."""
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    in_dot = (d_right < r_small) | (d_left < r_small)
    yin = (
        (d_right <= r_small) | ((d_left > r_small) & (d_left <= 0.5 * r_big)) | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    return np.where(in_dot, 2, yin.astype(np.int64)).astype(np.int64)


@dataclass(frozen=True)
class YinYang:
    """A Yin-Yang sample set: ``points`` [n, 2], ``features`` [n, 4], ``labels`` [n] (0 yang, 1 yin, 2 dot)."""

    points: np.ndarray
    labels: np.ndarray
    r_big: float

    @property
    def features(self) -> np.ndarray:
        """``(x, y, 2 r_big - x, 2 r_big - y)``: values in ``[0, 2 r_big]``."""
        return np.concatenate([self.points, 2 * self.r_big - self.points], axis=1)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def yinyang(n: int = 5000, seed: int = 0, r_small: float = 0.1, r_big: float = 0.5) -> YinYang:
    """``n`` samples, deterministic for a given ``seed``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"yinyang: n must be a non-negative integer, got {n!r}")
    if not 0 < r_small < 0.5 * r_big:
        raise InputError(f"yinyang: need 0 < r_small < r_big / 2, got r_small={r_small}, r_big={r_big}")
    rng = np.random.default_rng(seed)
    goals = rng.integers(0, 3, size=n)
    points = np.empty((n, 2))
    # Vectorized rejection sampling: draw candidates in blocks and give each sample the first
    # candidate (in draw order) that lies in the disc and has the sample's class.
    todo = np.arange(n)
    while todo.size:
        cand = rng.uniform(0.0, 2 * r_big, size=(todo.size, 16, 2))
        inside = np.hypot(cand[..., 0] - r_big, cand[..., 1] - r_big) <= r_big
        cls = yinyang_class(cand[..., 0], cand[..., 1], r_small, r_big)
        ok = inside & (cls == goals[todo][:, None])
        found = ok.any(axis=1)
        first = ok.argmax(axis=1)
        points[todo[found]] = cand[found, first[found]]
        todo = todo[~found]
    return YinYang(points=points, labels=goals.astype(np.int64), r_big=r_big)


def yinyang_splits(
    seed: int = 0, n_train: int = 5000, n_val: int = 1000, n_test: int = 1000, **kwargs: float
) -> tuple[YinYang, YinYang, YinYang]:
    """The standard train/validation/test split (5000/1000/1000), each from its own derived seed."""
    seeds = np.random.SeedSequence(seed).spawn(3)
    return tuple(  # type: ignore[return-value]
        yinyang(n, int(s.generate_state(1)[0]), **kwargs) for n, s in zip((n_train, n_val, n_test), seeds)
    )
