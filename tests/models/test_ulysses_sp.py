"""Ulysses SP=2 and SP=4 (gloo processes) == unpatched transformers one sequence at a time.

Inputs are padded and sliced with verl's own ``ulysses_pad_and_slice_inputs`` and the
logits gathered with verl's ``gather_outputs_and_unpad`` under verl's SP group, as in
verl's FSDP engine and its ``tests/models/test_transformers_ulysses.py``. Rank
gradients are averaged over the SP group (FSDP's reduction) before the comparison.
Tolerances: logits 1e-5 relative, gradients 1e-4. Each case also runs *unpatched* HF
on the same shards (what verl does today) and asserts it is wrong.

One spawn of 4 processes runs every case: SP=4 over all ranks and SP=2 over the two
subgroups [0, 1] and [2, 3] (like SP inside DP).
"""

from __future__ import annotations

import pytest

pytest.importorskip("verl")

from verl_falcon_plugin.models.falcon_h1.equivalence import GRAD_TOLERANCE, LOGITS_TOLERANCE, sp_check  # noqa: E402
from verl_falcon_plugin.testing import (  # noqa: E402
    GROUPED_GEOMETRY,
    REALISTIC_GEOMETRY,
    VLLM_SERVABLE_GEOMETRY,
)

pytestmark = pytest.mark.slow

# 25 tokens: SP pads 3 (sp=4) or 1 (sp=2) tokens; sequences straddle the shards; one spans several chunks
LENGTHS = [5, 1, 13, 6]
CASES = [
    # 12 Q / 2 KV heads (KV heads repeated at sp=4), 24 SSM heads, one B/C group
    dict(name="realistic", sp_size=4, geometry=REALISTIC_GEOMETRY, attn="sdpa"),
    dict(name="realistic", sp_size=2, geometry=REALISTIC_GEOMETRY, attn="sdpa"),
    # two B/C groups: at sp=4 each rank's SSM heads are half of one group
    dict(name="grouped", sp_size=4, geometry=GROUPED_GEOMETRY, attn="sdpa"),
    dict(name="grouped-eager", sp_size=2, geometry=GROUPED_GEOMETRY, attn="eager"),
    # 2 Q / 1 KV heads, 2 SSM heads of 64
    dict(name="servable", sp_size=2, geometry=VLLM_SERVABLE_GEOMETRY, attn="sdpa"),
    # flash_attention_2 (CPU stand-in for the varlen kernel) behind verl's own generic Ulysses wrapper
    dict(name="realistic-flash", sp_size=4, geometry=REALISTIC_GEOMETRY, attn="flash_attention_2"),
]


@pytest.fixture(scope="module")
def results():
    return sp_check([dict(case, lengths=LENGTHS, seed=0) for case in CASES], world_size=4)


def test_every_rank_reported_every_case(results):
    assert len(results) == 4 * len(CASES)


@pytest.mark.parametrize("case", [f"{c['name']}-sp{c['sp_size']}" for c in CASES])
def test_sp_equals_one_at_a_time(results, case):
    rows = [r for r in results if f"{r['case']}-sp{r['sp_size']}" == case]
    assert rows
    for row in rows:
        assert row["logits"] <= LOGITS_TOLERANCE, row
        assert row["grads"] <= GRAD_TOLERANCE, row
        assert row["unpatched_logits"] > 100 * LOGITS_TOLERANCE, f"unpatched HF under SP should be wrong: {row}"


def test_flash_attention_saw_one_all_to_all(results):
    """Behind verl's generic wrapper, flash attention gets the full sequence and 12/4 heads (KV: 2 -> 4 -> 1)."""
    for row in (r for r in results if r["case"] == "realistic-flash"):
        padded_total = 28  # 25 tokens padded to a multiple of 4 by ulysses_pad_and_slice_inputs
        assert row["flash_calls"] == [[[1, padded_total, 3, 8], [1, padded_total, 1, 8]]] * 2, row
