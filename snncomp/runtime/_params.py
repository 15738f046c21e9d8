"""``Params``: the parameters of a compiled network, a read-only mapping of groups and a JAX PyTree.

::

    params = exe.params                      # Params(weight={...}, delay={...}, bias={...})
    params["weight"]["x->h"]                 # [8, 16]; also params.weight["x->h"]
    grads = jax.grad(loss)(params)           # a Params with the same keys
    params = params.replace(weight=new_w)    # a new Params: it is immutable

Groups: ``weight`` (edge key -> ``[src, tgt]``), ``delay`` (edge key -> scalar seconds) and, optionally,
``bias`` (population -> ``[n]``). Plain dicts of that structure are accepted wherever a ``Params`` is
(:func:`~snncomp.runtime.check_params` turns them into one).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import jax
import numpy as np

from ..errors import InputError

__all__ = ["GROUPS", "Params", "with_groups"]

GROUPS = ("weight", "delay", "bias")
"""The parameter groups, in the order a ``Params`` lists them; ``weight`` and ``delay`` are required."""

_P = TypeVar("_P", bound=Mapping[str, Any])


def _from_groups(groups: Mapping[str, Any]) -> Params:
    # Builds without checks: JAX rebuilds nodes with any leaves (None, tracers, optax's labels).
    out = object.__new__(Params)
    object.__setattr__(out, "_groups", {g: groups[g] for g in GROUPS if g in groups})
    return out


@jax.tree_util.register_pytree_with_keys_class
class Params(Mapping[str, dict[str, Any]]):
    """The parameters of a compiled network (``exe.params``): ``weight``, ``delay`` and optionally ``bias``.

    A read-only mapping from group name to ``{key: array}`` (``params["weight"][edge]``,
    ``"bias" in params``, ``dict(params)``) with the groups as attributes too (``params.weight``), and a
    JAX PyTree: ``jax.grad``, ``jax.tree.map``, ``jit`` arguments and optax work on it and give back
    a ``Params``. Its key paths are a dict's (``['weight']['x->h']``), so checkpoints written from dicts
    and from ``Params`` read into either. Build a changed copy with :meth:`replace` (or ``params | {...}``).
    """

    __slots__ = ("_groups",)
    _groups: dict[str, Any]

    def __init__(
        self, weight: Mapping[str, Any], delay: Mapping[str, Any], bias: Mapping[str, Any] | None = None
    ) -> None:
        groups = {"weight": weight, "delay": delay, "bias": bias}
        for name, group in groups.items():
            if group is not None and not isinstance(group, Mapping):
                raise InputError(
                    f"Params: the '{name}' group must be a dict (key -> array), got {type(group).__name__}"
                )
        object.__setattr__(self, "_groups", {g: dict(v) for g, v in groups.items() if v is not None})

    # -- the mapping ------------------------------------------------------------------------------
    def __getitem__(self, group: str) -> dict[str, Any]:
        try:
            return self._groups[group]
        except KeyError:
            raise KeyError(f"params have no group {group!r}; groups: {', '.join(self._groups)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    @property
    def weight(self) -> dict[str, Any]:
        """Edge key -> weight matrix ``[src, tgt]``."""
        return self._groups["weight"]

    @property
    def delay(self) -> dict[str, Any]:
        """Edge key -> delay (a scalar, seconds)."""
        return self._groups["delay"]

    @property
    def bias(self) -> dict[str, Any]:
        """Population -> bias per neuron ``[n]``; empty where the params have no ``bias`` group."""
        return self._groups.get("bias", {})

    # -- changed copies ---------------------------------------------------------------------------
    def replace(self, **groups: Any) -> Params:
        """A copy with ``groups`` replaced (``bias=None`` drops the ``bias`` group)."""
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown:
            raise InputError(f"Params.replace: unknown group(s) {unknown}; the groups are {list(GROUPS)}")
        if any(groups.get(g, 0) is None for g in ("weight", "delay")):
            raise InputError("Params.replace: the 'weight' and 'delay' groups cannot be dropped")
        merged = {**self._groups, **groups}
        return _from_groups({g: v for g, v in merged.items() if v is not None})

    def __or__(self, other: Mapping[str, Any]) -> Params:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self.replace(**other)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Params is immutable; build a changed copy with params.replace({name}=...)")

    def __reduce__(self) -> tuple[Any, tuple[dict[str, Any]]]:
        return _from_groups, (self._groups,)

    # -- the PyTree -------------------------------------------------------------------------------
    def tree_flatten_with_keys(self) -> tuple[list[tuple[Any, Any]], tuple[str, ...]]:
        # A dict's order and keys: leaves and key paths are those of the same params as a dict.
        names = tuple(sorted(self._groups))
        return [(jax.tree_util.DictKey(n), self._groups[n]) for n in names], names

    def tree_flatten(self) -> tuple[list[Any], tuple[str, ...]]:
        names = tuple(sorted(self._groups))
        return [self._groups[n] for n in names], names

    @classmethod
    def tree_unflatten(cls, names: tuple[str, ...], children: Any) -> Params:
        return _from_groups(dict(zip(names, children, strict=True)))

    def __repr__(self) -> str:
        def short(x: Any) -> str:
            shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
            if shape is None or dtype is None:
                return repr(x)
            return f"{np.dtype(dtype).name}{list(shape)}"

        def group(g: Any) -> str:
            if not isinstance(g, Mapping):
                return repr(g)
            return "{" + ", ".join(f"{k!r}: {short(v)}" for k, v in g.items()) + "}"

        return "Params(" + ", ".join(f"{n}={group(g)}" for n, g in self._groups.items()) + ")"


def with_groups(params: _P, **groups: Any) -> _P:
    """``params`` with ``groups`` replaced, of the same kind: a ``Params`` stays one, a dict stays a dict.

    For helpers that take either (a loss's weight transform, ``fit``'s ``project``): a ``jit``-ed
    training step needs its parameters to keep their PyTree type from one step to the next.
    """
    if isinstance(params, Params):
        return params.replace(**groups)  # type: ignore[return-value]  # _P is Params here
    return {**params, **groups}  # type: ignore[return-value]  # _P is a dict here
