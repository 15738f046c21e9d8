"""Datasets: generated on the fly, deterministic per seed, no downloads."""

from ._yinyang import YinYang, yinyang, yinyang_class, yinyang_splits

__all__ = ["YinYang", "yinyang", "yinyang_class", "yinyang_splits"]
