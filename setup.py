"""Builds the event loop's C code (``snncomp/targets/jax_event/native``); everything else is in pyproject.toml.

The C file includes no Python headers: it is a plain shared library that ``_native.py`` loads with ctypes,
so a C compiler is all ``pip install`` needs.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "snncomp.targets.jax_event._event_queue",
            sources=["snncomp/targets/jax_event/native/event_queue.c"],
            # No -ffast-math: the loop must round as IEEE arithmetic does (spike times are compared
            # with the vectorized loop's to rounding). -fno-math-errno and -fno-trapping-math change
            # no result: they let sqrt be inlined and the branch-free loops vectorize.
            extra_compile_args=["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math"],
            libraries=["m"],
            # Without a C compiler the install still succeeds; every stage then runs the vectorized
            # loop and Executable.report() says why (tests/test_native_queue.py fails on purpose).
            optional=True,
        )
    ]
)
