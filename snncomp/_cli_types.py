"""Moved to :mod:`snncomp.cli._types`; kept for ``snncomp.targets.bss2._cli``, which imports it from here."""

from .cli._types import integer, non_negative_int, positive_int, positive_number

__all__ = ["integer", "non_negative_int", "positive_int", "positive_number"]
