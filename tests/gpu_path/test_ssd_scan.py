"""``cuda_path.ssd_scan`` (mamba_ssm's Triton SSD scan with seq_idx) on the Triton interpreter.

References: the float64 step-by-step recurrence and the float32 torch path
(``varlen_ssd``). Tolerances: ``FP32_TOLERANCE`` (1e-5; measured <= 4e-7) and, for
bf16 activations, ``BF16_TOLERANCE`` (5e-2; the kernel returns bf16 and carries chunk
states in bf16: measured about 9e-3). The negative control runs the same kernel
without ``seq_idx``: state leaks across sequences and the error is 0.2, not 1e-7.
"""

from __future__ import annotations

import pytest

from tests.gpu_path.conftest import requires_kernels, run_case

pytestmark = [pytest.mark.slow, requires_kernels]

FP32_TOLERANCE = 1e-5
BF16_TOLERANCE = 5e-2
LEAK_FLOOR = 1e-2


def _fp32_rows(prefix: str) -> dict:
    rows = {k: v for k, v in run_case("scan")["fp32"].items() if k.startswith(prefix)}
    assert rows, prefix
    return rows


def _assert_exact(rows: dict) -> None:
    for name, row in rows.items():
        assert row["out_dtype"] == "torch.float32", name
        for field in ("out_vs_torch", "out_vs_float64", "torch_vs_float64"):
            assert row[field] <= FP32_TOLERANCE, (name, field, row)
        for field in ("grads_vs_torch", "grads_vs_float64"):
            assert row[field][0] <= FP32_TOLERANCE, (name, field, row)


def test_packed_forward_and_backward_match_the_torch_path_and_a_float64_recurrence():
    _assert_exact(_fp32_rows("groups="))


def test_every_sequence_parallel_rank_head_slice_including_uneven_group_splits():
    rows = _fp32_rows("heads=")
    assert len(rows) == 6  # 4 ranks of 12 heads / 3 groups (ranks 1 and 2 split groups), 2 ranks of 8 heads / 4 groups
    _assert_exact(rows)


def test_bf16_activations_within_bf16_tolerance():
    row = run_case("scan")["bf16"]
    assert row["out_dtype"] == "torch.bfloat16"  # the kernel returns x.dtype (the torch path returns float32)
    assert row["out_vs_float64"] <= BF16_TOLERANCE, row
    assert row["grads_vs_float64"][0] <= BF16_TOLERANCE, row
    assert row["torch_vs_float64"] <= FP32_TOLERANCE, row  # both references saw the same bf16-rounded inputs


def test_negative_control_the_kernel_without_seq_idx_leaks_state_across_sequences():
    assert run_case("scan")["no_seq_idx"] > LEAK_FLOOR
