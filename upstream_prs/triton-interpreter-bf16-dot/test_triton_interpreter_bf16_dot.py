"""Triton 3.9's interpreter multiplies bf16 ``tl.dot`` operands as raw bits; the patch multiplies values.

``reproduce.py`` runs under ``TRITON_INTERPRET=1`` on a copy of the installed triton 3.9.0, unpatched and
patched with ``git am``. Small integers make every correct result exact (tolerance 0): the unpatched copy is
off by ~1e10 for bf16 (negative control) and exact for fp16 (the reproduction itself is right); the patched
copy is exact for both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def reproduction(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    env = dict(TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    result = run_on_copy(HERE, HERE / "reproduce.py", destination, patched=patched, package="triton", **env)
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
