"""What NIR import and export share: errors, the optional ``nir`` import, metadata keys, type tables, helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...errors import Diagnostic, SnnCompError
from ...ir import IFNode, LIFNode, LINode
from ...ir._models import NAME_PATTERN

TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3}
"""Time units a NIR file may use, and their length in seconds."""

SUPPORTED_TYPES = (
    "Input",
    "Output",
    "CubaLIF",
    "LIF",
    "CubaLI",
    "LI",
    "IF",
    "Linear",
    "Affine",
    "Scale",
    "Delay",
    "NIRGraph",
)
"""The NIR node types :func:`from_nir` imports."""

_INSTALL_HINT = 'pip install "snncomp[nir]"'

# Metadata keys written by to_nir. Values are JSON strings or numpy arrays, the two
# kinds that nir.write/nir.read keep exactly (numbers would come back as numpy scalars).
_MARK = "snncomp.network"  # graph: name, outputs, metadata, node/edge order, emitted keys
_NODE = "snncomp.node"  # neuron: which parameters are scalars, max_spikes, scalar t_refrac
_T_REFRAC = "snncomp.t_refrac"  # neuron: per-neuron t_refrac array
_EDGE = "snncomp.edge"  # Linear: the projection's name
_MASK = "snncomp.mask"  # Linear: the projection's bool mask, [source, target]
_MASKED = "snncomp.masked_values"  # Linear: weights hidden by the mask (NIR gets zeros there)
_FORMAT = 1

_NAME_RE = re.compile(NAME_PATTERN)

_NEURON_TYPES = {"CubaLIF": "lif", "LIF": "lif", "IF": "if", "CubaLI": "li", "LI": "li"}
_ROLE_OF_TYPE = {
    **dict.fromkeys(_NEURON_TYPES, "neuron"),
    "Linear": "linear",
    "Affine": "linear",
    "Scale": "scale",
    "Delay": "delay",
}
# NIR parameters of each neuron type (for shape checks and size inference).
_NEURON_PARAMS = {
    "CubaLIF": ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "CubaLI": ("tau_mem", "tau_syn", "r", "v_leak", "w_in"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "LI": ("tau", "r", "v_leak"),
    "IF": ("r", "v_threshold", "v_reset"),
}
_LIF_FIELDS = ("tau_mem", "tau_syn", "v_threshold", "v_leak", "v_reset", "bias")
_LI_FIELDS = ("tau_mem", "tau_syn", "v_leak", "bias")
_IF_FIELDS = ("v_threshold", "v_reset", "bias")
_BIAS = "snncomp.bias"  # neuron: the exact per-neuron IR bias (the Affine's b is rounded by the division)
_MODELS = {"lif": LIFNode, "li": LINode, "if": IFNode}


class NIRError(SnnCompError, ValueError):
    """A NIR graph cannot be imported, or a network cannot be exported; lists every problem."""

    def __init__(self, summary: str, problems: Iterable[Diagnostic] = ()):
        self.summary = summary
        self.diagnostics = list(problems)
        lines = [summary] + [f"  - {d}" for d in self.diagnostics]
        super().__init__("\n".join(lines))


class NIRUnavailableError(SnnCompError, ImportError):
    """The optional package ``nir`` is not installed."""


def _import_nir() -> Any:
    try:
        import nir
    except ImportError as exc:
        raise NIRUnavailableError(
            f"NIR support needs the optional package 'nir', which is not installed; install it with: {_INSTALL_HINT}"
        ) from exc
    return nir


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _unique(base: str, used: set[str]) -> str:
    key, k = base, 1
    while key in used:
        key, k = f"{base}#{k}", k + 1
    used.add(key)
    return key


def _text(x: Any) -> str:
    return x.decode("utf8") if isinstance(x, bytes) else str(x)


def _json(raw: Any) -> Any:
    try:
        return json.loads(_text(raw))
    except (TypeError, ValueError):
        return None


def _metadata(node: Any) -> dict[str, Any]:
    meta = getattr(node, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def _numeric(value: Any) -> np.ndarray | None:
    """``value`` as a numeric numpy array (torch/jax arrays included), or None."""
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        return None
    return arr


def _f64(arr: np.ndarray, n: int) -> np.ndarray:
    """A parameter broadcast to ``n`` neurons, in float64."""
    return np.broadcast_to(arr.reshape(-1) if arr.ndim else arr, (n,)).astype(np.float64)


def _param(arr: np.ndarray, n: int, scalars: set[str] | None, field_name: str, unit: float) -> float | np.ndarray:
    """A NIR parameter as an IR parameter: a scalar, or a per-neuron array keeping float32/float64.

    Graphs written by snncomp say which parameters were scalars; otherwise a
    parameter whose values are all equal becomes a scalar.
    """
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    flat: np.ndarray = arr.astype(dtype, copy=False).reshape(-1)
    if unit != 1.0:  # skipped for seconds, so values stay bit-exact
        flat = flat * unit
    if scalars is not None:
        # Trust the metadata only while it still fits (another tool may have edited the values).
        scalar = field_name in scalars and bool(np.all(flat == flat[0]))
    else:
        scalar = bool(flat.size == 1 or np.all(flat == flat[0]))
    if scalar:
        return float(flat[0])
    return np.array(np.broadcast_to(flat, (n,)))


def _scaled(value: float | np.ndarray, factor: float) -> float | np.ndarray:
    return value * factor if isinstance(value, float) else (value.astype(np.float64) * factor).astype(value.dtype)


def _sanitize(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:200]
    if out and not re.match(r"[A-Za-z0-9_]", out[0]):
        out = "_" + out[:199]
    return out
