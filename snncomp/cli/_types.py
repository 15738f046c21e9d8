"""``argparse`` value types shared by the command groups: a bad value is a usage error (exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["integer", "non_negative_int", "positive_int", "positive_number"]


def integer(*, minimum: int, what: str) -> Callable[[str], int]:
    """A type accepting integers ``>= minimum``; ``what`` describes it in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


def positive_number(what: str) -> Callable[[str], float]:
    """A type accepting finite numbers ``> 0``; ``what`` describes it in the error (``"a finite time > 0 in s"``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int = integer(minimum=1, what="a positive integer")
non_negative_int = integer(minimum=0, what="an integer >= 0")
