"""Append-only JSONL outputs that survive a crash: whole lines only, resumable by a per-row index.

Each row is written with one ``os.write`` on an ``O_APPEND`` descriptor. A crash can
leave at most one partial last line (no newline, or not JSON); :func:`repair_and_load`
cuts it off before a resumed run appends, so the file only ever holds whole rows.
A sidecar ``OUT.meta.json`` records the settings the rows were produced with, so a
resume with different settings fails instead of mixing two experiments in one file.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from verl_falcon_plugin.data.jsonl_io import MalformedRowError, write_json


class ResumeMismatchError(ValueError):
    """An existing output was produced with other settings or from other inputs."""


def repair_and_load(path: str, index_key: str) -> dict[Any, dict[str, Any]]:
    """The rows already in ``path`` by ``row[index_key]``, after cutting off a partial last line."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as handle:
        data = handle.read()
    good_end, done = 0, {}
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        if not raw.endswith(b"\n"):
            break  # the write a crash interrupted
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            if good_end + len(raw) == len(data):
                break  # a torn last line that happens to end in a newline byte
            raise MalformedRowError(path, number, "not valid JSON in the middle of the file: not our output?")
        if not isinstance(row, dict) or index_key not in row:
            raise MalformedRowError(path, number, f"missing the index field {index_key!r}: not our output?")
        done[row[index_key]] = row
        good_end += len(raw)
    if good_end != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
            os.fsync(handle.fileno())
    return done


def check_or_write_meta(path: str, meta: dict[str, Any], restart_hint: str) -> None:
    """Record ``meta`` next to ``path``, or check that an earlier run used the same settings."""
    meta_path = path + ".meta.json"
    meta = json.loads(json.dumps(meta))  # normalise tuples etc. as they come back from disk
    if os.path.exists(meta_path) and os.path.exists(path):
        with open(meta_path, encoding="utf-8") as handle:
            previous = json.load(handle)
        changed = sorted(k for k in set(meta) | set(previous) if meta.get(k) != previous.get(k))
        if changed:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {meta.get(k)!r}" for k in changed)
            raise ResumeMismatchError(f"{path} was started with other settings ({details}); {restart_hint}")
        return
    write_json(meta_path, meta)


class AppendWriter:
    """Appends whole JSON lines, one ``os.write`` each, from any thread."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, row: dict[str, Any]) -> None:
        payload = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            written = os.write(self._fd, payload)
            if written != len(payload):  # regular files write fully or raise; be loud if not
                raise OSError(f"short write: {written} of {len(payload)} bytes")
            os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "AppendWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
