"""Shared by the upstream patch tests: the pinned package, patched with ``git am`` or not, in a temporary tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.upstream import UpstreamError, package_tree, read_base

__all__ = ["package_copy", "read_base"]


def package_copy(folder: Path, destination: Path, *, patched: bool) -> Path:
    """The directory to put on ``PYTHONPATH`` for the folder's package, patched or not (see ``upstream.py``)."""
    try:
        return package_tree(folder, destination, patched=patched)
    except UpstreamError as error:
        pytest.fail(str(error))
