"""Reading and writing IR documents, with errors that name the path.

``Network.model_validate_json`` works directly; these helpers add what a file
on disk needs: a clear message for text that is not JSON or not an object, and
Pydantic's error locations rewritten as ``nodes[2] 'h' (lif).tau_mem``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Diagnostic, IRError
from ._models import Network

__all__ = ["diagnostics_from_validation_error", "dumps", "from_dict", "load", "loads", "save"]


def _loc_to_path(loc: tuple[Any, ...], raw: Any) -> str:
    """Turn Pydantic's ``('nodes', 2, 'lif', 'tau_mem')`` into ``nodes[2] 'h' (lif).tau_mem``."""
    out = ""
    cursor: Any = raw
    i = 0
    while i < len(loc):
        part = loc[i]
        if isinstance(part, int):
            out += f"[{part}]"
            item = cursor[part] if isinstance(cursor, list) and part < len(cursor) else None
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                out += f" '{item['name']}'"
            # Discriminated unions insert the tag as an extra location element.
            if isinstance(item, dict) and i + 1 < len(loc) and loc[i + 1] == item.get("kind"):
                out += f" ({item['kind']})"
                i += 1
            cursor = item
        else:
            out += f".{part}" if out else str(part)
            cursor = cursor.get(part) if isinstance(cursor, dict) else None
        i += 1
    return out


def diagnostics_from_validation_error(exc: ValidationError, raw: Any) -> list[Diagnostic]:
    """One diagnostic per Pydantic error, with a readable path."""
    diags = []
    for err in exc.errors(include_url=False):
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "network_invalid":
            for problem in err["ctx"]["problems"]:
                path, _, reason = problem.partition(": ")
                diags.append(Diagnostic(path, reason))
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown field (not part of the IR schema)"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            msg = f"unknown node kind {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
        diags.append(Diagnostic(_loc_to_path(tuple(err["loc"]), raw), msg))
    return diags


def from_dict(data: Any, *, source: str = "network") -> Network:
    """Validate a parsed JSON document, raising :class:`IRError` with every problem."""
    if not isinstance(data, dict):
        raise IRError(f"{source}: expected a JSON object at the top level, got {type(data).__name__}")
    try:
        return Network.model_validate(data)
    except ValidationError as exc:
        diags = diagnostics_from_validation_error(exc, data)
        raise IRError(f"{source}: invalid network ({len(diags)} problem(s))", diags) from None


def loads(text: str | bytes, *, source: str = "network") -> Network:
    """Parse and validate an IR JSON document."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IRError(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise IRError(f"{source}: not valid JSON: not UTF-8 text ({exc.reason})") from None
    return from_dict(data, source=source)


def load(path: str | Path) -> Network:
    """Read an IR JSON file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise IRError(f"{p}: cannot read file: {exc.strerror or exc}") from None
    return loads(raw, source=str(p))


def dumps(net: Network, *, indent: int | None = 1) -> str:
    """The JSON text of ``net`` (exact: reads back equal, bit for bit)."""
    return net.model_dump_json(indent=indent)


def save(net: Network, path: str | Path, *, indent: int | None = 1) -> None:
    """Write ``net`` as JSON to ``path``."""
    Path(path).write_text(dumps(net, indent=indent) + "\n")
