"""Liger 0.8.5's LigerFalconH1SwiGLUMLP leaves down_proj's bias unscaled; the patch scales it like HF.

The reference is transformers' own FalconH1MLP (the installed one), with the same weights, in fp32: outputs
and gradients must agree within TOL (fp32 rounding of two different operation orders; observed ~2e-6).
Liger's Triton kernels run on CPU under TRITON_INTERPRET=1, with the project's interpreter shim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "compare_with_hf.py"
TOL = 1e-5


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def comparison(request, tmp_path_factory) -> tuple[str, dict]:
    """One subprocess per variant: importing torch, transformers and Triton dominates the run time."""
    # The upstream repository keeps the package under src/: the tree mirrors it.
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    result = run_on_copy(HERE, RUNNER, destination, patched=patched, package="liger", TRITON_INTERPRET="1")
    assert result["kernel"] == "InterpretedFunction"
    return request.param, result["mlp_bias"]


def test_without_bias_both_copies_match_hf(comparison) -> None:
    _, by_bias = comparison
    result = by_bias["False"]
    assert result["forward"] < TOL
    assert max(result["backward"].values()) < TOL, result["backward"]


def test_with_bias_only_the_patched_copy_matches_hf(comparison) -> None:
    variant, by_bias = comparison
    result = by_bias["True"]
    assert result["bias_error"] > 0.1  # the biases are large enough for the bug to show
    if variant == "patched":
        assert result["forward"] < TOL
        assert max(result["backward"].values()) < TOL, result["backward"]
    else:
        # HF computes m * (W h + b), Liger m * W h + b: the difference is exactly (m - 1) * b ...
        assert result["forward"] > 0.1
        assert result["forward_minus_bias_error"] < TOL
        # ... and only down_proj.bias gets a wrong gradient (sum of dy instead of m * sum of dy).
        wrong = {name for name, error in result["backward"].items() if error > TOL}
        assert wrong == {"down_proj.bias"}, result["backward"]
