"""Array-valued fields of the IR: validation, exact JSON encoding, schema.

Arrays are numpy arrays marked read-only, so a frozen model stays frozen. In
JSON an array is ``{"dtype": "float64", "shape": [5, 120], "data": [...]}``
with ``data`` flat in C order. Floats are written as the shortest decimal that
reads back to the same float64, so float64 round-trips bit-exactly; float32
values are widened to float64 on the way out (exact) and narrowed back on the
way in (exact, since they were float32 to begin with).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

FLOAT_DTYPES = ("float32", "float64")

_ARRAY_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "dtype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
    },
    "required": ["dtype", "shape", "data"],
    "additionalProperties": False,
}


def _freeze(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True, order="C")
    arr.flags.writeable = False
    return arr


def _from_document(value: dict[str, Any]) -> np.ndarray:
    extra = set(value) - {"dtype", "shape", "data"}
    if extra:
        raise PydanticCustomError("array_form", "array object has unknown keys {keys}", {"keys": sorted(extra)})
    try:
        dtype = np.dtype(value["dtype"])
        shape = tuple(int(s) for s in value["shape"])
        data = value["data"]
    except KeyError as exc:
        raise PydanticCustomError(
            "array_form",
            "array object needs 'dtype', 'shape' and 'data'; missing {key}",
            {"key": str(exc)},
        ) from None
    except TypeError as exc:
        raise PydanticCustomError("array_form", "malformed array object: {e}", {"e": str(exc)}) from None
    if not isinstance(data, (list, tuple)):
        raise PydanticCustomError("array_form", "array 'data' must be a flat list", {})
    if any(s < 0 for s in shape):
        raise PydanticCustomError("array_form", "array shape {shape} has a negative size", {"shape": list(shape)})
    expected = math.prod(shape)
    if len(data) != expected:
        raise PydanticCustomError(
            "array_form",
            "array 'data' has {n} values but shape {shape} needs {m}",
            {"n": len(data), "shape": list(shape), "m": expected},
        )
    if dtype == np.bool_ and any(not isinstance(x, bool) for x in data):
        raise PydanticCustomError("array_form", "bool array 'data' must hold true/false only", {})
    try:
        return np.asarray(data, dtype=dtype).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise PydanticCustomError(
            "array_form", "array data does not fit dtype {dtype}: {e}", {"dtype": str(dtype), "e": str(exc)}
        ) from None


def _coerce(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, dict):
        return _from_document(value)
    if hasattr(value, "__array__"):  # jax arrays and friends
        return np.asarray(value)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        ragged = ragged_detail(value)
        if ragged is not None:
            raise PydanticCustomError("array_ragged", "{detail}", {"detail": ragged}) from None
        raise PydanticCustomError("array_type", "not an array: {e}", {"e": str(exc)}) from None
    if arr.dtype == object:
        raise PydanticCustomError("array_type", "not a rectangular numeric array", {})
    return arr


def ragged_detail(value: Any, _at: str = "") -> str | None:
    """Where a nested list is ragged (rows of different lengths, or lists mixed with numbers), else None."""
    if not isinstance(value, (list, tuple)):
        return None

    def length(x: Any) -> int | None:
        if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim > 0):
            return len(x)
        return None

    def entries(n: int | None) -> str:
        return "a single number" if n is None else f"{n} value{'s' if n != 1 else ''}"

    lengths = [length(x) for x in value]
    for i, n in enumerate(lengths):
        if n != lengths[0]:
            return (
                f"ragged nested list: rows of different lengths ({_at}[0] has {entries(lengths[0])}, "
                f"{_at}[{i}] has {entries(n)}); give a rectangular array"
            )
    for i, x in enumerate(value):
        inner = ragged_detail(x if not isinstance(x, np.ndarray) else x.tolist(), f"{_at}[{i}]")
        if inner is not None:
            return inner
    return None


def _first_bad_index(mask: np.ndarray) -> str:
    idx = np.argwhere(mask)[0]
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def validate_float_array(value: Any, ndim: int | None = None) -> np.ndarray:
    """Coerce ``value`` to a finite float32/float64 array (ints become float64)."""
    arr = _coerce(value)
    if arr.dtype == np.bool_:
        raise PydanticCustomError("array_dtype", "expected a float array, got bool", {})
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    if arr.dtype.name not in FLOAT_DTYPES:
        raise PydanticCustomError(
            "array_dtype", "expected dtype float32 or float64, got {dtype}", {"dtype": str(arr.dtype)}
        )
    if ndim is not None and arr.ndim != ndim:
        raise PydanticCustomError(
            "array_ndim",
            "expected a {ndim}-D array, got shape {shape}",
            {"ndim": ndim, "shape": list(arr.shape)},
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        raise PydanticCustomError(
            "finite",
            "values must be finite, found {value} at index {index}",
            {"value": float(arr[bad][0]), "index": _first_bad_index(bad)},
        )
    return _freeze(arr)


def validate_bool_array(value: Any) -> np.ndarray:
    """Coerce ``value`` to a 2-D bool array; 0/1 integers are accepted."""
    arr = _coerce(value)
    if arr.dtype != np.bool_:
        if np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all():
            arr = arr.astype(bool)
        else:
            raise PydanticCustomError(
                "array_dtype", "mask must be a bool array, got dtype {dtype}", {"dtype": str(arr.dtype)}
            )
    if arr.ndim != 2:
        raise PydanticCustomError("array_ndim", "expected a 2-D array, got shape {shape}", {"shape": list(arr.shape)})
    return _freeze(arr)


def array_to_document(arr: np.ndarray) -> dict[str, Any]:
    """The JSON form of an array (see module docstring)."""
    flat = arr.reshape(-1)
    data = flat.tolist() if arr.dtype == np.bool_ else flat.astype(np.float64).tolist()
    return {"dtype": arr.dtype.name, "shape": list(arr.shape), "data": data}


def validate_param(value: Any) -> float | np.ndarray:
    """A neuron parameter: a finite scalar (kept as a Python float) or a 1-D float array."""
    if isinstance(value, bool):
        raise PydanticCustomError("param_type", "expected a number or a per-neuron array, got bool", {})
    if isinstance(value, (int, float, np.floating, np.integer)):
        v = float(value)
        if not math.isfinite(v):
            raise PydanticCustomError("finite", "value must be finite, got {value}", {"value": v})
        return v
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return validate_param(value.item())
    return validate_float_array(value, ndim=1)


def _serialize_param(value: float | np.ndarray) -> Any:
    return value if isinstance(value, float) else array_to_document(value)


class _ArraySpec:
    """Pydantic hook for an array-valued field (float with fixed ndim, or bool)."""

    def __init__(self, kind: str, ndim: int | None = None):
        self.kind = kind
        self.ndim = ndim

    def _validate(self, value: Any) -> np.ndarray:
        if self.kind == "bool":
            return validate_bool_array(value)
        return validate_float_array(value, self.ndim)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(array_to_document, when_used="json"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        dtypes = ["bool"] if self.kind == "bool" else list(FLOAT_DTYPES)
        out = dict(_ARRAY_JSON_SCHEMA)
        out["properties"] = dict(out["properties"], dtype={"enum": dtypes})
        if self.ndim is not None:
            out["description"] = f"{self.ndim}-D array, data flat in C order"
        else:
            out["description"] = "2-D array, data flat in C order"
        return out


class _ParamSpec:
    """Pydantic hook for a scalar-or-per-neuron parameter."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            validate_param,
            serialization=core_schema.plain_serializer_function_ser_schema(_serialize_param, when_used="json"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        vec = dict(_ARRAY_JSON_SCHEMA)
        vec["properties"] = dict(vec["properties"], dtype={"enum": list(FLOAT_DTYPES)})
        return {
            "anyOf": [{"type": "number"}, {"type": "array", "items": {"type": "number"}}, vec],
            "description": "a scalar, or one value per neuron (1-D array of length `size`)",
        }


WeightSpec = _ArraySpec("float", ndim=2)
MaskSpec = _ArraySpec("bool")
ParamSpec = _ParamSpec()


def values_equal(a: Any, b: Any) -> bool:
    """Structural equality that understands numpy arrays (dtype, shape and bits)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
            return False
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return a == b
