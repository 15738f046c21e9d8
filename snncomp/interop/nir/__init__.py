"""Read and write the Neuromorphic Intermediate Representation (NIR).

NIR (https://neuroir.org, PyPI ``nir``) is the exchange format of snnTorch,
Norse, Sinabs, Spyx, Rockpool, jaxsnn, Lava and others. This module maps NIR
graphs to the snncomp IR and back, following NIR's own equations (see
``docs/nir.md`` for every mapping and its derivation):

- ``CubaLIF`` and ``CubaLI`` become ``lif`` and ``li`` exactly. A NIR spike
  through weight ``W`` makes ``I`` jump by ``w_in * W / tau_syn`` and ``I``
  enters ``dv/dt`` multiplied by ``r``, so the snncomp weight is
  ``r * w_in * W / tau_syn`` (per target neuron).
- ``LIF`` and ``LI`` (no synaptic filter) become ``lif``/``li`` with
  ``tau_syn = 0`` (instantaneous synapses), ``IF`` becomes ``if``, all exactly:
  a spike moves ``v`` by ``r * W / tau`` (``IF``: ``r * W``).
- ``Linear``, ``Affine``, ``Scale`` and ``Delay`` nodes between neurons are
  composed into projections; an ``Affine`` bias becomes the target
  population's ``bias`` (times ``r`` and ``w_in``); nested ``NIRGraph``
  subgraphs are flattened into dotted names (``sub.lif1``).
- ``convention=`` undoes what a given exporter (snnTorch, Spyx, Rockpool,
  Norse, Sinabs) writes differently from NIR's equations: discrete time
  steps, the one-step pulse reading of a spike, their ``r``/``w_in`` choices.

What NIR cannot express (``t_refrac``, ``max_spikes``, masks, edge names, the
network's name, metadata and outputs) travels in namespaced ``snncomp.*``
metadata, so ``from_nir(to_nir(net)) == net`` exactly, also through a file.

The package ``nir`` is optional and imported only inside these functions.
"""

from ._common import SUPPORTED_TYPES, TIME_UNITS, NIRError, NIRUnavailableError
from ._conventions import CONVENTIONS, DEFAULT_DT
from ._export import to_nir, write_nir
from ._import import from_nir, read_nir

__all__ = [
    "CONVENTIONS",
    "DEFAULT_DT",
    "SUPPORTED_TYPES",
    "TIME_UNITS",
    "NIRError",
    "NIRUnavailableError",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]
