"""Every ```python block of README.md and docs/*.md runs, so the documentation stays true.

One test per block, id ``FILE:LINE`` (the line of the opening fence). The blocks of one file run in
order in one namespace, so a later block can use the names of an earlier one, with a fresh temporary
directory per file as the working directory. Running a single block (``-k``) first runs the blocks
above it.

Markers, an HTML comment on the line right before the fence (invisible on GitHub):

- ``<!-- slow -->``: the block takes more than ~10 s; it runs only with ``--runslow``.
- ``<!-- skip: REASON -->``: the block is not run (say why).

Setup a reader does not need to see goes in an invisible block, run in its place in the sequence::

    <!-- invisible-code-block: python
    net = ...
    -->

Code that is not meant to run (pseudo-code, output samples, shell) is fenced as something other than
``python`` (``text``, ``bash``, ...). Any other HTML comment right before a python fence is an error,
so that a misspelt marker cannot silently run or skip a block.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_COMMENT = re.compile(r"^\s*<!--(?P<body>.*)-->\s*$")
_INVISIBLE = re.compile(r"^\s*<!--\s*invisible-code-block:\s*python\s*$")
_PYTHON = {"python", "py", "python3"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence (of the comment, for an invisible block)
    first_code_line: int  # 1-based line of the block's first line of code
    code: str
    mark: str | None = None  # None, "slow" or "skip"
    reason: str = ""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def parse(path: Path) -> list[Block]:
    """The python blocks of one markdown file, in order, with their markers."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if _INVISIBLE.match(lines[i]):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "-->"), None)
            if end is None:
                raise ValueError(f"{path}:{i + 1}: invisible-code-block without a closing '-->' line")
            blocks.append(Block(path, i + 1, i + 2, "\n".join(lines[i + 1 : end])))
            i = end + 1
            continue
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = len(m["indent"]), m["fence"], m["info"].strip()
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        end = next((j for j in range(i + 1, len(lines)) if close.match(lines[j])), None)
        if end is None:
            raise ValueError(f"{path}:{i + 1}: unclosed code fence")
        language = info.split()[0].lower() if info else ""
        if language in _PYTHON:
            code = "\n".join(_dedent(line, indent) for line in lines[i + 1 : end])
            mark, reason = _marker(path, lines, i)
            blocks.append(Block(path, i + 1, i + 2, code, mark, reason))
        i = end + 1
    return blocks


def _dedent(line: str, indent: int) -> str:
    """A line of a fenced block indented by ``indent`` (inside a list item), without that indent."""
    return line[indent:] if line[:indent].strip() == "" else line.lstrip()


def _marker(path: Path, lines: list[str], fence: int) -> tuple[str | None, str]:
    if fence == 0:
        return None, ""
    comment = _COMMENT.match(lines[fence - 1])
    if comment is None:
        return None, ""
    body = comment["body"].strip()
    if body == "slow":
        return "slow", "slow; run with --runslow"
    if body.startswith("skip:") and body[5:].strip():
        return "skip", body[5:].strip()
    raise ValueError(
        f"{path}:{fence}: unknown marker {lines[fence - 1].strip()!r} before a python block; "
        "use <!-- slow --> or <!-- skip: REASON -->"
    )


BLOCKS = [block for path in DOC_FILES for block in parse(path)]


def _param(block: Block) -> Any:
    marks = []
    if block.mark == "slow":
        marks.append(pytest.mark.slow)
    elif block.mark == "skip":
        marks.append(pytest.mark.skip(reason=block.reason))
    return pytest.param(block, id=block.id, marks=marks)


@dataclass
class _FileRun:
    """The state of one markdown file's blocks: shared namespace, working directory, progress."""

    directory: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    next: int = 0  # index (into this file's blocks) of the first block not yet run
    failed: Block | None = None


_RUNS: dict[Path, _FileRun] = {}


def _runs_now(block: Block, config: pytest.Config) -> bool:
    if block.mark == "skip":
        return False
    if block.mark == "slow":
        return bool(config.getoption("--runslow")) or os.environ.get("SNNCOMP_SLOW") == "1"
    return True


def _exec(block: Block, namespace: dict[str, Any]) -> None:
    # Padding puts the code at its own lines of the markdown file, so tracebacks point into the doc.
    source = "\n" * (block.first_code_line - 1) + block.code
    exec(compile(source, str(block.path), "exec"), namespace)


def test_doc_files_found() -> None:
    assert (ROOT / "README.md") in DOC_FILES and len(DOC_FILES) > 1
    assert BLOCKS, "no python blocks found in the docs"


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_doc_block(
    block: Block, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch
) -> None:
    mine = [b for b in BLOCKS if b.path == block.path]
    index = mine.index(block)
    run = _RUNS.get(block.path)
    if run is None:
        run = _FileRun(tmp_path_factory.mktemp(block.path.stem))
        run.namespace["__name__"] = f"__doc_{block.path.stem}__"
        _RUNS[block.path] = run
    if run.failed is not None:
        pytest.skip(f"an earlier block of this file failed: {run.failed.id}")
    if run.next > index:
        pytest.skip("already run")  # only when a block is collected twice
    monkeypatch.chdir(run.directory)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for earlier in mine[run.next : index]:  # blocks not run as their own test (-k, skipped, slow)
        if not _runs_now(earlier, request.config):
            continue
        try:
            _exec(earlier, run.namespace)
        except Exception as e:
            run.failed = earlier
            pytest.fail(f"earlier block {earlier.id} failed: {type(e).__name__}: {e}")
    run.next = index + 1
    try:
        _exec(block, run.namespace)
    except BaseException:
        run.failed = block
        raise
