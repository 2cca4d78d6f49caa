"""Triton 3.9's interpreter multiplies bf16 ``tl.dot`` operands as raw bits; the patch multiplies values.

``reproduce.py`` runs under ``TRITON_INTERPRET=1`` on a copy of the installed triton 3.9.0, unpatched and
patched with ``git am``. Small integers make every correct result exact (tolerance 0): the unpatched copy is
off by ~1e10 for bf16 (negative control) and exact for fp16 (the reproduction itself is right); the patched
copy is exact for both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from upstream_prs.conftest import package_copy
from upstream_prs.upstream import pythonpath_env

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def reproduction(request, tmp_path_factory) -> tuple[str, dict]:
    root = package_copy(HERE, tmp_path_factory.mktemp(request.param), patched=request.param == "patched")
    proc = subprocess.run(
        [sys.executable, str(HERE / "reproduce.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env=pythonpath_env(root, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore"),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["triton"]).is_relative_to(root), result["triton"]  # the copy ran, not the installed triton
    assert result["kernel"] == "InterpretedFunction"
    return request.param, result["errors"]


def test_fp16_dot_is_exact_before_and_after(reproduction) -> None:
    _, errors = reproduction
    assert errors["torch.float16"] == 0.0


def test_bf16_dot_is_garbage_before_and_exact_after(reproduction) -> None:
    variant, errors = reproduction
    if variant == "patched":
        assert errors["torch.bfloat16"] == 0.0
    else:
        assert errors["torch.bfloat16"] > 1e6, errors
