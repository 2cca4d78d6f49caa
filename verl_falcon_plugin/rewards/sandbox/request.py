"""A ``/run_code`` request, validated against Sandbox-Fusion's own request model and clamped to the server's budgets.

The field types come from the ``sandbox_fusion`` client package's pydantic ``RunCodeRequest`` (the model the
official client sends), so a request the official server accepts is accepted here. On top of it come the checks
that model does not make and a server must: finite, positive numbers (pydantic lets ``NaN``/``inf`` through
a ``float``), values clamped to the server's maxima, file names that stay inside the work directory, strict
base64. Every failure is a :class:`RequestError` (HTTP 400) that names the field.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from dataclasses import dataclass
from typing import Any

from sandbox_fusion import RunCodeRequest

try:  # the model is written for pydantic.v1 (sandbox_fusion/models.py imports it the same way)
    from pydantic.v1 import ValidationError
except ImportError:  # pragma: no cover - pydantic 1 installed
    from pydantic import ValidationError


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run budgets: the defaults a request gets and the maxima its values are clamped to."""

    memory_limit_mb: int = 1024  # a run's memory (cgroup) and each process's address space, when a request sends none
    max_memory_mb: int = 4096  # the most a request's memory_limit_MB gets
    compile_memory_limit_mb: int = 4096  # javac and g++ need more than most programs
    max_processes: int = 64  # per run (cgroup pids.max) and per slot uid (RLIMIT_NPROC)
    disk_mb: int = 256  # the run's work directory: a tmpfs of this size
    max_inodes: int = 16384  # files + directories in the work directory
    max_file_size_mb: int = 64
    max_open_files: int = 256
    max_output_bytes: int = 1 << 20
    max_fetch_bytes: int = 16 << 20  # fetch_files, all files together (a file that does not fit is named, not cut)
    max_timeout_s: float = 60.0
    max_files: int = 1024  # entries in files / fetch_files
    max_name_bytes: int = 1024  # one file name

    def rlimits(self, timeout_s: float, memory_mb: int) -> dict[str, int]:
        return {
            "CPU": math.ceil(timeout_s) + 1,
            "AS": memory_mb << 20,
            "NPROC": self.max_processes,
            "FSIZE": self.max_file_size_mb << 20,
            "NOFILE": self.max_open_files,
            "CORE": 0,
            "MEMLOCK": 0,
            "MSGQUEUE": 0,
        }


class RequestError(ValueError):
    """The request itself is malformed: answered with HTTP 400, naming the field."""


@dataclass(frozen=True)
class RunRequest:
    code: str
    language: str
    compile_timeout: float
    run_timeout: float
    memory_mb: int
    stdin: str | None
    files: dict[str, bytes]  # relative, normalised name -> content
    fetch_files: tuple[str, ...]


def parse_request(body: Any, limits: SandboxLimits) -> RunRequest:
    """The request as the official model reads it, then finite, bounded and clamped; or a RequestError."""
    if not isinstance(body, dict):
        raise RequestError(
            f"the body must be a JSON object (Sandbox-Fusion's RunCodeRequest), got {type(body).__name__}"
        )
    try:
        model = RunCodeRequest.parse_obj(body)
    except ValidationError as err:
        raise RequestError(_describe(err)) from None
    if len(model.files) > limits.max_files or len(model.fetch_files) > limits.max_files:
        raise RequestError(f"fields 'files' and 'fetch_files' take at most {limits.max_files} entries each")
    files = {
        _relative_name(f"files[{name!r}]", name, limits): _decode(name, content)
        for name, content in model.files.items()
        if content is not None
    }  # Sandbox-Fusion skips null contents too
    if sum(map(len, files.values())) > limits.disk_mb << 20:
        raise RequestError(f"field 'files' holds more than the work directory's {limits.disk_mb} MiB")
    fetch = tuple(_relative_name(f"fetch_files[{i}]", name, limits) for i, name in enumerate(model.fetch_files))
    return RunRequest(
        code=model.code,
        language=model.language,
        compile_timeout=_timeout("compile_timeout", model.compile_timeout, limits),
        run_timeout=_timeout("run_timeout", model.run_timeout, limits),
        memory_mb=_memory_mb(body.get("memory_limit_MB", -1), limits),
        stdin=model.stdin,
        files=files,
        fetch_files=fetch,
    )


def _describe(err: ValidationError) -> str:
    errors = err.errors()
    problems = [f"field {'.'.join(str(p) for p in e['loc']) or 'body'!r}: {e['msg']}" for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(problems) + more


def _timeout(field: str, value: float, limits: SandboxLimits) -> float:
    if not math.isfinite(value) or value <= 0:
        raise RequestError(f"field {field!r} must be a finite, positive number of seconds, got {value!r}")
    return min(float(value), limits.max_timeout_s)


def _memory_mb(value: Any, limits: SandboxLimits) -> int:
    """Sandbox-Fusion's extension field (verl sends it): <= 0 means the server's default."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"field 'memory_limit_MB' must be an integer number of MiB, got {value!r}")
    return limits.memory_limit_mb if value <= 0 else min(value, limits.max_memory_mb)


def _relative_name(field: str, name: str, limits: SandboxLimits) -> str:
    if not name or "\0" in name or len(name.encode(errors="surrogatepass")) > limits.max_name_bytes:
        raise RequestError(
            f"field {field}: a file name must be non-empty, without NUL, and at most {limits.max_name_bytes} bytes"
        )
    if os.path.isabs(name):
        raise RequestError(
            f"field {field}: {name!r} is an absolute path; the embedded sandbox lets a program write only its "
            "work directory (the program's current directory), so use a path relative to it"
        )
    normal = os.path.normpath(name)
    if normal == "." or normal == ".." or normal.startswith("../"):
        raise RequestError(f"field {field}: {name!r} escapes the work directory")
    return normal


def _decode(name: str, content: str) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(f"field files[{name!r}] is not valid base64: {err}") from None
