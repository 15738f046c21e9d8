"""The batch axis of a run, named so that loops can agree on their trip count across the batch.

``JaxExecutable`` maps the program over the batch with ``jax.vmap(..., axis_name=BATCH_AXIS)``. Under
``vmap`` a ``while_loop`` whose condition differs per sample runs as long as the slowest sample and,
every iteration, selects each carried array between its old and new value for the whole batch. A
condition reduced over the named axis (:func:`batch_any`) is the same for every sample, so the loop
needs no select; a finished sample's iterations change nothing (the loops mask them), which is what
the select was for. Outside such a ``vmap`` (one sample, or a caller's own ``vmap`` without the name)
the helper returns its argument unchanged.

Tried and not kept: the EventProp backward of the event queue as a loop over the batch's largest number
of live events (``pmax`` of the count) instead of a scan over every buffer slot: fewer steps where
buffers are underused, but each step cost more (dynamic indexing, outputs written into carried arrays),
and the multi-spike gradient measured 0.83-0.98x.
"""

from __future__ import annotations

from jax import lax
from jaxtyping import Array

__all__ = ["BATCH_AXIS", "batch_any", "batch_named"]

BATCH_AXIS = "snncomp_batch"


def batch_named() -> bool:
    """Whether the code being traced runs under the executable's named batch ``vmap``."""
    try:
        lax.axis_index(BATCH_AXIS)
    except NameError:
        return False
    return True


def batch_any(x: Array) -> Array:
    """Whether ``x`` holds for any sample of the batch (``x`` itself outside the named ``vmap``)."""
    return lax.pmax(x.astype("int32"), BATCH_AXIS) > 0 if batch_named() else x
