"""The whole GPU path of ``packed_mixer_forward`` (conv + scan) against the torch path.

The conv kernel is CUDA C++: ``tests/gpu_path/fake_conv_extension.py`` replays the C++
entry's input checks and computes with causal_conv1d's own ``causal_conv1d_ref``; all
Python layers of causal_conv1d above the extension are the real ones. The scan runs
on the Triton interpreter. Tolerance 1e-5 relative (measured <= 3e-7).
"""

from __future__ import annotations

import pytest

from tests.gpu_path.conftest import requires_kernels, run_case

pytestmark = [pytest.mark.slow, requires_kernels]

TOLERANCE = 1e-5


@pytest.mark.parametrize("geometry", ["realistic", "grouped"])
def test_packed_mixer_forward_on_the_kernels_matches_the_torch_path(geometry):
    row = run_case("model")["mixer"][geometry]
    assert row["kernel_calls"] == {"conv1d": 1, "ssd_scan": 1}, row  # the kernel path really ran
    assert row["missing_grads"] == [], row
    assert row["out"] <= TOLERANCE, row
    assert row["grads"][0] <= TOLERANCE, row


def test_conv_call_passes_the_kernel_checks_and_matches_causal_conv1d_ref_and_the_torch_conv():
    row = run_case("model")["conv"]
    assert row["accepted"] is None
    assert row["out_vs_ref"] == 0.0  # through the package's autograd Function and custom op, unchanged
    assert row["out_vs_torch"] <= TOLERANCE, row
    assert row["grads_vs_torch"] <= TOLERANCE, row


def test_negative_control_the_conv_without_seq_idx_mixes_sequences():
    assert run_case("model")["conv"]["no_seq_idx_vs_torch"] > 1e-2


@pytest.mark.parametrize(
    "rejected, reason, kernel_message",
    [
        ("rejects_12_channels", "reason_12_channels", "divisible by 8"),
        ("rejects_width_5", "reason_width_5", "width between 2 and 4"),
        ("rejects_bias_dtype", "reason_bias_dtype", "bias dtype"),
    ],
)
def test_calls_the_kernel_would_reject_are_caught_by_conv_usable_first(rejected, reason, kernel_message):
    row = run_case("model")["conv"]
    assert kernel_message in row[rejected]  # the replayed C++ check fails...
    assert row[reason]  # ...and conv_constraint_violation names it, so conv_usable() falls back instead


def test_why_the_call_transposes_and_casts_seq_idx():
    row = run_case("model")["conv"]
    assert "channel last" in row["rejects_channels_first"]
    assert "int32" in row["rejects_int64_seq_idx"]
