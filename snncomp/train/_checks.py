"""The in-program checks of ``fit``, ``make_step`` and ``evaluate``: collected as a code, raised as ``InputError``."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..runtime import CollectedChecks, collect_checks

_CHECK_MESSAGE = re.compile(r"EquinoxRuntimeError: (.+?)(?:\n\s*\n|\n-{3,}|\Z)", re.S)


@contextlib.contextmanager
def _reported_checks(where: str) -> Iterator[None]:
    """Turn a failed in-program check (``equinox.error_if`` inside ``jit``) into an :class:`InputError`.

    Inside ``jit`` the check surfaces as a runtime error of the XLA program whose text embeds the
    message; ``fit``/``evaluate`` own that ``jit`` boundary, so they can give the user the message alone.
    """
    # JAX logs the callback's traceback before it raises; the InputError below says it all.
    callback_log = logging.getLogger("jax._src.callback")
    quiet = _DropCheckTracebacks()
    callback_log.addFilter(quiet)
    try:
        yield
    except (RuntimeError, ValueError) as exc:  # the XLA runtime error's class depends on the call path
        found = _CHECK_MESSAGE.findall(str(exc))
        if not found:
            raise
        raise InputError(f"{where}: {found[-1].strip()}") from None
    finally:
        callback_log.removeFilter(quiet)


class _DropCheckTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (exc is not None and "EquinoxRuntimeError" in type(exc).__name__)


class _Checks:
    """The input and parameter checks of one jitted function, carried out of it as a code (no host callback).

    Without host callbacks the program can be stored in JAX's persistent compilation cache, so a new
    process's first ``fit``/``make_step`` step skips XLA (a program with callbacks is never stored).
    """

    def __init__(self) -> None:
        self.sink: CollectedChecks | None = None

    @contextlib.contextmanager
    def collect(self) -> Iterator[CollectedChecks]:
        with collect_checks() as sink:
            self.sink = sink  # filled while tracing; its messages name what a code read back means
            yield sink

    def raise_if_failed(self, where: str, code: Any) -> None:
        """Raise :class:`InputError` naming the failed check, if ``code`` (from the program) says one did."""
        message = self.sink.message(code) if self.sink is not None else None
        if message is not None:
            raise InputError(f"{where}: {message}")
