"""Patched Falcon-H1 on one packed row == unpatched transformers Falcon-H1 one sequence at a time.

Logits within 1e-5 relative, loss and every parameter gradient within 1e-4 (see
``equivalence.grad_error`` for the gradient scale). Every case also checks that the
*unpatched* model on the same packed row is wrong by far more than the tolerance,
so these tests fail when the patch is off.
"""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from verl_falcon_plugin.models.falcon_h1.equivalence import (  # noqa: E402
    GRAD_TOLERANCE,
    LOGITS_TOLERANCE,
    packed_check,
)
from verl_falcon_plugin.testing import (  # noqa: E402
    GROUPED_GEOMETRY,
    REALISTIC_GEOMETRY,
    VLLM_SERVABLE_GEOMETRY,
)

GEOMETRIES = {"servable": VLLM_SERVABLE_GEOMETRY, "realistic": REALISTIC_GEOMETRY, "grouped": GROUPED_GEOMETRY}


def assert_equivalent(result, unpatched_wrong_by=100):
    assert result.logits <= LOGITS_TOLERANCE, result
    assert result.loss <= GRAD_TOLERANCE, result
    assert result.grads <= GRAD_TOLERANCE, result
    assert result.unpatched_logits > unpatched_wrong_by * LOGITS_TOLERANCE, (
        f"the unpatched model should be wrong: {result}"
    )


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_packed_equals_one_at_a_time(geometry):
    # lengths 5, 1, 13, 30, 8, 3: length 1, non-multiples of the chunk size 8, one over several chunks
    assert_equivalent(packed_check(GEOMETRIES[geometry]))


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_attention_over_several_query_blocks(monkeypatch, attn_implementation):
    # sdpa/eager attend query block by query block; 8-token blocks make sequences straddle them
    from verl_falcon_plugin.models.falcon_h1 import attention

    monkeypatch.setattr(attention, "QUERY_BLOCK", 8)
    result = packed_check(REALISTIC_GEOMETRY, (9, 1, 17, 3), attn_implementation=attn_implementation)
    assert_equivalent(result)


def test_packed_with_activation_checkpointing():
    # verl enables non-reentrant checkpointing: the recomputation must see the same boundaries
    assert_equivalent(packed_check(GROUPED_GEOMETRY, (4, 12, 1), gradient_checkpointing=True))


@pytest.mark.parametrize(
    "overrides",
    [dict(mamba_rms_norm=False), dict(mamba_norm_before_gate=True)],
    ids=["no-gated-norm", "norm-before-gate"],
)
def test_packed_with_other_mixer_norm_settings(overrides):
    # without the gated norm the mixer's share of the logits is small, and so is the unpatched leak (~8e-4)
    assert_equivalent(packed_check(GROUPED_GEOMETRY, **overrides), unpatched_wrong_by=30)


def test_packed_flash_attention_goes_through_verls_wrapper_once():
    """flash_attention_2 (a CPU stand-in for the varlen kernel) behind verl's generic Ulysses wrapper.

    The stand-in refuses ``position_ids`` (verl's wrapper would all-to-all again) and takes
    the sequences only from ``cu_seq_lens``, so it must receive the boundaries we computed.
    """
    pytest.importorskip("verl")
    from verl_falcon_plugin.models.falcon_h1 import equivalence

    equivalence.STAND_IN_CALLS.clear()
    assert_equivalent(packed_check(REALISTIC_GEOMETRY, (9, 1, 17), attn_implementation="flash_attention_2"))
    # 2 layers, forward only (backward does not re-run attention); all 12 heads, the whole packed row
    assert [q for q, _ in equivalence.STAND_IN_CALLS] == [(1, 27, 12, 8)] * 2
