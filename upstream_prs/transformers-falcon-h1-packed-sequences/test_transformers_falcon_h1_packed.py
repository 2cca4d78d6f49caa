"""transformers 5.10.4's Falcon-H1 leaks conv and SSM state across packed sequences; the patch keeps them apart.

The reference is the unpatched model itself run on each sequence alone (no packing, nothing to leak), with the
same weights: packed logits must match it within LOGIT_TOL (fp32; observed ~1.5e-6), and the gradient of a
weighted sum of the packed logits must match the sum of the per-sequence gradients within GRAD_RTOL of the
largest gradient (observed ~5e-7 relative). Unpatched, every sequence after the first is off by about the size
of the logits. The fused CUDA path cannot run here; what it hands mamba_ssm's kernel is recorded instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "compare_packed.py"
LOGIT_TOL = 1e-5
GRAD_RTOL = 1e-5
EXPECTED_SEQ_IDX = [[0] * 5 + [1] * 11 + [2] * 7]  # LENGTHS = (5, 11, 7) in the runner


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def comparison(request, tmp_path_factory) -> tuple[str, dict]:
    """One subprocess per variant, both ``mamba_norm_before_gate`` settings in it (imports dominate)."""
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    result = run_on_copy(HERE, RUNNER, destination, patched=patched, package="transformers")
    return request.param, result["by_norm_before_gate"]


@pytest.mark.parametrize("norm_before_gate", ["False", "True"])
def test_packed_equals_one_at_a_time_only_with_the_patch(comparison, norm_before_gate: str) -> None:
    variant, results = comparison
    result = results[norm_before_gate]
    first, *later = result["logit_errors"]
    assert first < LOGIT_TOL  # the first sequence has nothing before it to leak from
    if variant == "patched":
        assert max(later) < LOGIT_TOL, result
        assert result["grad_error"] < GRAD_RTOL * result["grad_scale"], result
    else:
        assert min(later) > 0.1 * result["logit_scale"], result
        assert result["grad_error"] > 1e-2 * result["grad_scale"], result


@pytest.mark.parametrize("norm_before_gate", ["False", "True"])
def test_fused_path_gets_seq_idx_and_the_configured_norm_order(comparison, norm_before_gate: str) -> None:
    variant, results = comparison
    passed = results[norm_before_gate]["fused_kernel_arguments"]
    if variant == "patched":
        assert passed == {"seq_idx": EXPECTED_SEQ_IDX, "norm_before_gate": norm_before_gate == "True"}
    else:
        assert passed == {"seq_idx": None, "norm_before_gate": False}  # whatever the config says


def test_seq_idx_from_position_ids_and_cu_seq_lens_agree(comparison) -> None:
    variant, results = comparison
    derived = results["False"]["seq_idx"]
    if variant == "unpatched":
        assert derived is None
        return
    assert derived == {"from_position_ids": EXPECTED_SEQ_IDX, "from_cu_seq_lens": EXPECTED_SEQ_IDX, "unpacked": None}
