"""JAX's persistent compilation cache, on by default for snncomp's programs.

Compiling a network's program takes seconds (the emulator's, or a training step, 3-10 s on 2 cores)
and every new process pays it again: a CLI call, a test worker, a notebook restart. JAX can keep the
compiled executables on disk, keyed by the program, the JAX/XLA version and the machine; a second
process that compiles the same network at the same shapes loads it instead.

Where: ``$SNNCOMP_COMPILATION_CACHE`` if set (a directory; ``0``, ``off``, ``false`` or an empty
string turn the cache off), else ``$SNNCOMP_CACHE/jax``, else ``~/.cache/snncomp/jax``. A cache the
user configured for JAX itself (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is left as it is.
Only programs that took at least ``jax_persistent_cache_min_compile_time_secs`` (JAX's default, 1 s)
to compile are stored.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["compilation_cache_dir", "configure_compilation_cache"]

_OFF = {"0", "off", "false", "no", ""}
_configured: list[Path | None] = []


def compilation_cache_dir() -> Path | None:
    """The directory snncomp asks JAX to cache compiled programs in (``None``: off)."""
    explicit = os.environ.get("SNNCOMP_COMPILATION_CACHE")
    if explicit is not None:
        return None if explicit.strip().lower() in _OFF else Path(explicit).expanduser()
    root = os.environ.get("SNNCOMP_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "snncomp") / "jax"


def configure_compilation_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`compilation_cache_dir` (once per process).

    Returns the directory in use, or ``None`` when the cache is off or JAX's own setting is kept.
    Must run before the first compilation of the process to take effect (JAX reads the setting then);
    ``snncomp.runtime`` calls it on import.
    """
    if _configured:
        return _configured[0]
    import jax

    chosen: Path | None = None
    if jax.config.jax_compilation_cache_dir is None:  # type: ignore[attr-defined]  # a flag set at run time
        target = compilation_cache_dir()
        if target is not None:
            try:
                target.mkdir(parents=True, exist_ok=True)
            except OSError:
                target = None  # a read-only home: run without the cache rather than fail
        if target is not None:
            jax.config.update("jax_compilation_cache_dir", str(target))
            chosen = target
    _configured.append(chosen)
    return chosen
