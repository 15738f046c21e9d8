"""One helper that checks a network the way every test wants it checked."""

from __future__ import annotations

from pathlib import Path

from snncomp import ir
from snncomp.ir import Network

GOLDEN_DIR = Path(__file__).parent / "golden"


def check_golden(path: Path, text: str, update: bool) -> None:
    """Compare ``text`` with the golden file (rewrite it under --update-golden)."""
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not update:
            raise AssertionError(f"golden file {path} was missing and has been written; re-run")
    expected = path.read_text()
    assert text == expected, f"text differs from {path}; run pytest --update-golden if the change is intended"


def roundtrip(net: Network) -> Network:
    """JSON round-trip; asserts exact equality and a stable second serialization."""
    text = ir.dumps(net)
    back = ir.loads(text)
    assert back == net
    assert ir.dumps(back) == text
    return back
