"""Interoperability with other spiking-network formats.

:mod:`snncomp.interop.nir` reads and writes the Neuromorphic Intermediate
Representation (NIR, https://neuroir.org). It needs the optional package
``nir`` (``pip install "snncomp[nir]"``), which is imported only when one of
its functions is called, so ``import snncomp`` never needs it.
"""
