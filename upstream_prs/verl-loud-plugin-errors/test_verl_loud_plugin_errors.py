"""verl 0.9.1 hides plugin load failures at DEBUG; the patch makes them WARNINGs (or errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from upstream_prs.conftest import package_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
BROKEN_PLUGIN = "broken_falcon_test_plugin"


def make_broken_plugin(root: Path) -> None:
    """A distribution whose ``verl.plugins`` entry point raises on import."""
    (root / f"{BROKEN_PLUGIN}.py").write_text("raise ImportError('a dependency is missing in this worker')\n")
    dist_info = root / f"{BROKEN_PLUGIN}-0.0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {BROKEN_PLUGIN}\nVersion: 0.0.1\n")
    (dist_info / "entry_points.txt").write_text(f"[verl.plugins]\nbroken = {BROKEN_PLUGIN}\n")


@pytest.fixture(params=["unpatched", "patched"])
def verl_copy(request, tmp_path: Path) -> tuple[str, Path]:
    root = package_copy(HERE, tmp_path, patched=request.param == "patched")
    make_broken_plugin(root)
    return request.param, root


def import_verl(root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import verl"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(root), "VERL_USE_EXTERNAL_PLUGINS": "broken", **env},
    )


def test_a_failing_plugin_is_reported_only_with_the_patch(verl_copy) -> None:
    variant, root = verl_copy
    proc = import_verl(root)
    assert proc.returncode == 0, proc.stderr
    reported = "Failed to load verl plugin 'broken'" in proc.stderr and "dependency is missing" in proc.stderr
    assert reported is (variant == "patched")


def test_strict_mode_refuses_to_start(verl_copy) -> None:
    variant, root = verl_copy
    proc = import_verl(root, VERL_STRICT_PLUGINS="1")
    assert (proc.returncode != 0) is (variant == "patched")
