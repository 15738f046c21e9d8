"""Checkpoints: params and optimizer state in an ``.npz`` file (no pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import SnnCompError


def _flatten(prefix: str, tree: Any) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {f"{prefix}/{jax.tree_util.keystr(path)}": np.asarray(leaf) for path, leaf in leaves}


def save_checkpoint(path: str | Path, params: Any, opt_state: Any = None, meta: dict[str, Any] | None = None) -> Path:
    """Write params (and optimizer state, metadata) to an ``.npz`` file; no pickle involved."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = _flatten("params", params)
    if opt_state is not None:
        arrays.update(_flatten("opt_state", opt_state))
    arrays["meta"] = np.frombuffer(json.dumps(meta or {}).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # the keys are array names, never ``allow_pickle``
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, params_like: Any, opt_state_like: Any = None) -> tuple[Any, Any, dict]:
    """Read a checkpoint into the structure of ``params_like`` (and ``opt_state_like``)."""
    with np.load(Path(path), allow_pickle=False) as data:
        stored = dict(data)

    def fill(prefix: str, like: Any) -> Any:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(like)
        out = []
        for p, leaf in leaves:
            key = f"{prefix}/{jax.tree_util.keystr(p)}"
            if key not in stored:
                raise SnnCompError(f"checkpoint {path}: missing array {key!r} (was it written for another network?)")
            arr = stored[key]
            if np.shape(arr) != np.shape(leaf):
                raise SnnCompError(f"checkpoint {path}: {key!r} has shape {arr.shape}, expected {np.shape(leaf)}")
            out.append(jnp.asarray(arr, dtype=jnp.asarray(leaf).dtype))
        return jax.tree_util.tree_unflatten(treedef, out)

    params = fill("params", params_like)
    opt_state = fill("opt_state", opt_state_like) if opt_state_like is not None else None
    meta = json.loads(bytes(stored["meta"]).decode()) if "meta" in stored else {}
    return params, opt_state, meta


def _latest_checkpoint(directory: Path) -> Path | None:
    found = sorted(directory.glob("ckpt-*.npz"))
    return found[-1] if found else None
