"""Row-level file I/O shared by the data commands: line-numbered reads, atomic writes.

Every reader names the file and line of a malformed row; every writer goes through a
temporary file in the destination's directory and an atomic rename, so a crash never
leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


class MalformedRowError(ValueError):
    """A row that cannot be used, with the place it came from."""

    def __init__(self, path: str | os.PathLike, line: int, problem: str):
        super().__init__(f"{path}:{line}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, row)`` for every non-blank line; rows must be JSON objects."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            yield number, parse_json_object(line, path, number)


def parse_json_object(line: str, path: str | os.PathLike, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise MalformedRowError(path, number, f"not valid JSON ({err.msg} at column {err.colno})") from err
    if not isinstance(row, dict):
        raise MalformedRowError(path, number, f"expected a JSON object, got {type(row).__name__}")
    return row


def require_field(row: dict[str, Any], field: str, kind: type | tuple[type, ...], path: str, line: int) -> Any:
    """``row[field]`` checked against ``kind``; a missing or mistyped field names itself."""
    if field not in row:
        raise MalformedRowError(path, line, f"missing field {field!r}")
    value = row[field]
    kinds = _as_tuple(kind)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise MalformedRowError(path, line, f"field {field!r} must be {names}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
    """Open a temporary sibling of ``path``; it replaces ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_jsonl(path: str | os.PathLike, rows: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    """Atomically write ``rows`` as JSONL; returns the number written."""
    count = 0
    with atomic_output(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_output(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, sort_keys=True)
        handle.write("\n")
