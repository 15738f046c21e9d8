"""What training takes: the data ``(inputs, targets)`` and the executable (``Trainable``); batches, device placement."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import jax
import numpy as np

from ..errors import SnnCompError

Data = tuple[Any, Any]
"""``(inputs, targets)``: inputs a PyTree (e.g. ``dict[str, Spikes]``, every leaf ``[N, ...]``) and targets
an array ``[N, ...]`` (or PyTree): samples on axis 0 of every leaf (see :func:`fit`)."""


class Trainable(Protocol):
    """What ``fit`` needs from an executable."""

    params: Any

    def apply(self, params: Any, inputs: Any) -> Any: ...


def _takes_key(exe: Trainable) -> bool:
    """Whether ``exe.apply`` draws noise from a ``key`` argument (e.g. a noisy chip, noise-aware training).

    An ``Executable`` says so (``uses_key``; every target's ``apply`` takes ``key``, a deterministic one
    ignores it); any other object with an ``apply`` does by having a ``key`` parameter.
    """
    from ..runtime import Executable

    if isinstance(exe, Executable):
        return exe.uses_key
    return "key" in inspect.signature(exe.apply).parameters


def _n_samples(data: Data) -> int:
    leaves = jax.tree.leaves(data[1]) + jax.tree.leaves(data[0])
    n = {int(np.shape(x)[0]) for x in leaves}
    if len(n) != 1:
        raise SnnCompError(f"training data: every array needs the same batch size (leading axis), got {sorted(n)}")
    return n.pop()


def _take(tree: Any, idx: np.ndarray) -> Any:
    return jax.tree.map(lambda a: np.asarray(a)[idx], tree)


def batch_sharding() -> tuple[Any, Any] | None:
    """(batch sharding, replicated sharding) over all devices, or None with one device.

    Under ``jax.distributed`` these are the devices of every process.
    """
    devices = jax.devices()
    if len(devices) < 2:
        return None
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("batch",))
    return NamedSharding(mesh, PartitionSpec("batch")), NamedSharding(mesh, PartitionSpec())


def _place(tree: Any, sharding: Any) -> Any:
    if sharding is None:
        return tree
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _global_array(x, sharding), tree)


def _global_array(x: Any, sharding: Any) -> jax.Array:
    """A global array over several processes (``jax.distributed``) from the value every process holds.

    Each process builds only its own shards from its copy. ``device_put`` would instead compare the
    whole value across processes, and fails for float64 input (compared after the cast to float32).
    """
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return jax.device_put(x, sharding)  # already global: reshard
    x = np.asarray(x)
    x = x.astype(jax.dtypes.canonicalize_dtype(x.dtype), copy=False)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
