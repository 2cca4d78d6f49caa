"""Shared by the upstream patch tests: the pinned package, patched with ``git am`` or not, in a temporary tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from upstream_prs.upstream import UpstreamError, package_tree, pythonpath_env, read_base

__all__ = ["package_copy", "read_base", "run_on_copy"]


def package_copy(folder: Path, destination: Path, *, patched: bool) -> Path:
    """The directory to put on ``PYTHONPATH`` for the folder's package, patched or not (see ``upstream.py``)."""
    try:
        return package_tree(folder, destination, patched=patched)
    except UpstreamError as error:
        pytest.fail(str(error))


def run_on_copy(
    folder: Path,
    script: Path,
    destination: Path,
    *,
    patched: bool,
    package: str,
    args: tuple[str, ...] = (),
    timeout: int = 300,
    **env: str,
) -> dict:
    """Run ``script`` in a subprocess that imports the folder's package from a copy, patched or not.

    The script prints a JSON object as its last line, with ``package``'s import path under the key
    ``package``: that path must lie in the copy, or the test would prove nothing about the patch.
    """
    root = package_copy(folder, destination, patched=patched)
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=pythonpath_env(root, **env),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result[package]).is_relative_to(root), f"{script.name} imported {result[package]}, not the copy"
    return result
