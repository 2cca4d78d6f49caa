"""Table-driven check of the two-tier math reward against hand-written verdicts, and against math-verify alone."""

from __future__ import annotations

import pytest

from tests.rewards.math_pairs import PAIRS, response_for
from verl_falcon_plugin.rewards.extract import answer_part
from verl_falcon_plugin.rewards.math import math_reward
from verl_falcon_plugin.rewards.math_tier1 import Tier1Verdict, compare
from verl_falcon_plugin.rewards.math_verify_runner import MathVerifyPool, verify_in_this_process
from verl_falcon_plugin.rewards.result import RewardStatus

#: pairs on which math-verify alone is mathematically wrong and tier 1's exact arithmetic is right
MATH_VERIFY_ALONE_WRONG = {
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}"),  # float tolerance: both are ~0
    ("50\\%", "0.5"),  # math-verify cannot parse a percent gold: string comparison only
    ("12.5\\%", "\\frac{1}{8}"),
}


@pytest.fixture(scope="module")
def pool():
    pool = MathVerifyPool(max_workers=2)
    yield pool
    pool.close()


def test_table_is_large_and_balanced():
    assert len(PAIRS) >= 100
    assert len({(g, p) for g, p, _, _ in PAIRS}) == len(PAIRS), "duplicate pairs"
    correct = sum(expected for _, _, expected, _ in PAIRS)
    assert 40 <= correct <= len(PAIRS) - 30
    assert {"fraction", "interval", "set", "matrix", "unit", "percent", "text", "latex", "close"} <= {
        c for *_, c in PAIRS
    }


@pytest.mark.parametrize("gold,predicted,expected,category", PAIRS, ids=[f"{c}:{g}|{p}" for g, p, _, c in PAIRS])
def test_two_tier_verdict_matches_hand_written(pool, gold, predicted, expected, category):
    result = math_reward(response_for(predicted), gold, pool=pool)
    assert result.status in (RewardStatus.CORRECT, RewardStatus.WRONG), result
    assert (result.score == 1.0) is expected, (result, category)


def test_math_verify_alone_agrees_except_on_listed_pairs():
    """Tier 2 reference: math-verify on the same text gives the same verdict on every pair but the listed ones,
    where it is provably wrong (so the tier-1 verdict is what makes the table pass)."""
    disagreements = set()
    for gold, predicted, expected, _ in PAIRS:
        alone = verify_in_this_process(gold, answer_part(response_for(predicted)))
        if alone is not expected:
            disagreements.add((gold, predicted))
    assert disagreements == MATH_VERIFY_ALONE_WRONG


def test_tier1_never_claims_equal_where_math_verify_and_hand_say_different():
    for gold, predicted, expected, _ in PAIRS:
        verdict = compare(gold, predicted)
        if verdict is Tier1Verdict.EQUAL:
            assert expected, (gold, predicted)
        if verdict is Tier1Verdict.DIFFERENT:
            assert not expected, (gold, predicted)


def test_tier1_decides_a_useful_share_on_its_own():
    decided = sum(compare(g, p) is not Tier1Verdict.UNDECIDED for g, p, _, _ in PAIRS)
    assert decided >= 40, decided


def test_tier1_and_math_verify_agree_on_tier1_correct_pairs():
    """Every pair tier 1 calls EQUAL is also correct for math-verify alone (bar the percent golds it cannot parse)."""
    for gold, predicted, _, _ in PAIRS:
        if compare(gold, predicted) is Tier1Verdict.EQUAL and (gold, predicted) not in MATH_VERIFY_ALONE_WRONG:
            assert verify_in_this_process(gold, "\\boxed{" + predicted + "}"), (gold, predicted)


def test_two_tier_agrees_with_math_verify_alone_on_the_benchmark_corpus(pool):
    """The benchmark's realistic mix (small sample): identical verdicts to math-verify alone."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "rewards_math.py"
    spec = importlib.util.spec_from_file_location("bench_rewards_math", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    corpus = bench.build_corpus(150, seed=7)
    for gold, response in corpus:
        ours = math_reward(response, gold, pool=pool)
        alone = verify_in_this_process(gold, answer_part(response))
        assert (ours.score == 1.0) is alone, (gold, ours)
