"""Shared by the upstream patch tests: a patched copy of an installed package."""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import subprocess
from pathlib import Path

import pytest


def read_base(folder: Path) -> tuple[str, str]:
    """``BASE`` holds ``distribution==version``."""
    distribution, _, version = (folder / "BASE").read_text().strip().partition("==")
    return distribution, version


def copy_installed_package(distribution: str, version: str, package: str, destination: Path) -> Path:
    """Copy the installed ``package`` to ``destination`` after checking it is the pinned version."""
    installed = metadata.version(distribution)
    if installed != version:
        pytest.fail(f"{distribution} {installed} is installed but the patch is pinned to {version}: update BASE")
    source = Path(metadata.distribution(distribution).locate_file(package))
    target = destination / package
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def apply_patches(folder: Path, root: Path) -> None:
    for patch in sorted(folder.glob("*.patch")):
        subprocess.run(
            ["patch", "-p1", "--forward", "-d", str(root), "-i", str(patch)], check=True, capture_output=True
        )
