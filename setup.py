"""Builds the C kernels (``snncomp/targets/jax_event/native``); everything else is in pyproject.toml.

No Python headers: the library is plain C that ``_native.py`` loads with ctypes, so a C compiler is
all ``pip install`` needs. The XLA FFI handlers (``ffi.c``) are built against the C API header that
jaxlib ships (``jaxlib/include``; jaxlib is a build requirement in pyproject.toml). Without that header
the library is built without them and the programs that would call them run their XLA versions.
"""

import importlib.metadata
import importlib.util
import os

from setuptools import Extension, setup

NATIVE = "snncomp/targets/jax_event/native"


def _xla_include() -> str | None:
    spec = importlib.util.find_spec("jaxlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        include = os.path.join(root, "include")
        if os.path.exists(os.path.join(include, "xla", "ffi", "api", "c_api.h")):
            return include
    return None


def _jaxlib_version() -> str:
    try:
        return importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


include = _xla_include()
sources = [f"{NATIVE}/event_queue.c", f"{NATIVE}/layer.c", f"{NATIVE}/recurrent.c"]
macros = []
if include:
    sources.append(f"{NATIVE}/ffi.c")
    # The loader registers the handlers only with the jaxlib whose header they were built against: the
    # FFI's version handshake would otherwise fail inside XLA, at a program's first call.
    macros.append(("SNNCOMP_JAXLIB", f'"{_jaxlib_version()}"'))
    # XLA's thread pool in the FFI (XLA_FFI_ThreadPool_Schedule) is newer than the FFI itself: without it
    # the handlers start threads of their own.
    with open(os.path.join(include, "xla", "ffi", "api", "c_api.h")) as header:
        if "XLA_FFI_ThreadPool_Schedule" in header.read():
            macros.append(("SNNCOMP_XLA_POOL", "1"))

setup(
    ext_modules=[
        Extension(
            "snncomp.targets.jax_event._event_queue",
            sources=sources,
            depends=[f"{NATIVE}/quadratic.h", f"{NATIVE}/layer.h"],
            include_dirs=[include] if include else [],
            define_macros=macros,
            # No -ffast-math: the kernels must round as IEEE arithmetic does (spike times are compared
            # with the vectorized code's to rounding). -fno-math-errno and -fno-trapping-math change
            # no result: they let sqrt be inlined and the branch-free loops vectorize.
            extra_compile_args=["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math"],
            libraries=["m", "pthread"],
            # Without a C compiler the install still succeeds; every stage then runs in XLA and
            # Executable.report() says why (tests/test_native_queue.py fails on purpose).
            optional=True,
        )
    ]
)
