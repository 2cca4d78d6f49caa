"""Ulysses SP=2 and SP=4 (gloo processes) == unpatched transformers one sequence at a time.

Inputs are padded and sliced with verl's own ``ulysses_pad_and_slice_inputs`` and the
logits gathered with verl's ``gather_outputs_and_unpad`` under verl's SP group, as in
verl's FSDP engine and its ``tests/models/test_transformers_ulysses.py``. Rank
gradients are averaged over the SP group (FSDP's reduction) before the comparison.
Tolerances: logits 1e-5 relative, gradients 1e-4.

Negative controls (``models/falcon_h1/sp_controls.py``), on the same shards:

- what verl 0.9.1 really runs for Falcon-H1 without the plugin: its generic Ulysses patch
  of flash attention (all-to-all, varlen split from the gathered ``position_ids``) and
  transformers' unpatched Mamba2 mixer. It must be wrong.
- verl's generic attention patch with a mixer that packs correctly but is not
  head-parallel: exact on every token whose sequence starts on its own shard (so the
  attention path and the packing of the control are right), wrong on the tokens whose
  sequence began on an earlier shard: the error only the head-parallel mixer removes.

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


def rows_of(results, case: str) -> list[dict]:
    """Every rank's result for ``case``; never empty, so the assertions over them cannot pass vacuously."""
    rows = [r for r in results if f"{r['case']}-sp{r['sp_size']}" == case]
    assert len(rows) == 4, f"{case}: expected one result per rank, got {len(rows)}"
    return rows


@pytest.mark.parametrize("case", [f"{c['name']}-sp{c['sp_size']}" for c in CASES])
def test_sp_equals_one_at_a_time(results, case):
    for row in rows_of(results, case):
        assert row["logits"] <= LOGITS_TOLERANCE, row
        assert row["grads"] <= GRAD_TOLERANCE, row


@pytest.mark.parametrize("case", [f"{c['name']}-sp{c['sp_size']}" for c in CASES])
def test_verl_alone_is_wrong_on_falcon_h1(results, case):
    for row in rows_of(results, case):
        assert row["verl_generic_logits"] > 100 * LOGITS_TOLERANCE, f"verl 0.9.1 alone should be wrong: {row}"


@pytest.mark.parametrize("case", [f"{c['name']}-sp{c['sp_size']}" for c in CASES])
def test_only_the_head_parallel_mixer_removes_the_shard_error(results, case):
    for row in rows_of(results, case):
        assert row["shard_local_mixer_own_shard"] <= LOGITS_TOLERANCE, f"the control itself must be exact: {row}"
        assert row["shard_local_mixer_earlier_shard"] > 100 * LOGITS_TOLERANCE, f"no shard error shown: {row}"


def test_flash_attention_saw_one_all_to_all(results):
    """Behind verl's generic wrapper, flash attention gets the full sequence and 12/4 heads (KV: 2 -> 4 -> 1)."""
    for row in rows_of(results, "realistic-flash-sp4"):
        padded_total = 28  # 25 tokens padded to a multiple of 4 by ulysses_pad_and_slice_inputs
        assert row["flash_calls"] == [[[1, padded_total, 3, 8], [1, padded_total, 1, 8]]] * 2, row
