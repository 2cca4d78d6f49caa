"""Liger 0.8.5 leaves Falcon-H1's gated RMSNorm unfused and, given a model, rewrites module globals; the patch
adds the fused kernel and patches only the instance.

References: transformers' own ``FalconH1RMSNormGated`` (same weights, fp32, forward and backward within TOL;
observed ~2e-6) and the unpatched HF model (logits within TOL after instance patching). Liger's Triton kernels
run under ``TRITON_INTERPRET=1`` with the project's interpreter shim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "compare_gated_norm.py"
TOL = 1e-5


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def comparison(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE, RUNNER, destination, patched=patched, package="liger", timeout=600, TRITON_INTERPRET="1"
    )


@pytest.mark.parametrize("norm_before_gate", ["False", "True"])
def test_fused_gated_norm_matches_transformers(comparison, norm_before_gate: str) -> None:
    variant, result = comparison
    norm = result["norm"][norm_before_gate]
    if variant == "unpatched":
        assert norm is None  # no such kernel
        return
    assert norm["forward"] < TOL
    assert max(norm["backward"].values()) < TOL, norm["backward"]


def test_instance_patching_fuses_the_mixer_norm_and_leaves_other_models_alone(comparison) -> None:
    variant, result = comparison
    instance = result["instance"]
    assert instance["logits_error"] < TOL  # exact either way
    if variant == "patched":
        assert instance["mixer_norm"] == "LigerRMSNormGated"
        assert instance["globals_rewritten"] == []
        assert instance["later_model_modules"] == []
    else:
        assert instance["mixer_norm"] == "FalconH1RMSNormGated"
        assert instance["globals_rewritten"] == ["FalconH1MLP", "FalconH1RMSNorm"]
        assert instance["later_model_modules"] == ["LigerFalconH1SwiGLUMLP", "LigerRMSNorm"]
