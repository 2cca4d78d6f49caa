"""The math reward: tier 1 (exact, cheap) first; math-verify (tier 2) when tier 1 cannot decide.

==============================  =========================================================
tier 1 (:mod:`.math_tier1`)     outcome
==============================  =========================================================
EQUAL                           CORRECT (math-verify not called)
DIFFERENT (exact values)        WRONG (math-verify not called: exact arithmetic is a proof,
                                and math-verify's float tolerance would accept 1/2004! for
                                1/2006!)
UNDECIDED                       math-verify in a worker process under a deadline
no answer extracted             math-verify on the answer part (its own extraction is the
                                fallback); NO_ANSWER if it finds nothing either
==============================  =========================================================

The score is binary. TIMEOUT and ERROR score 0 but keep their status, so that a trainer
or a report can tell "wrong" from "could not check". Several acceptable golds (a list)
score 1 when any of them matches.
"""

from __future__ import annotations

from typing import Any

from verl_falcon_plugin.rewards.extract import answer_part, extract_answer
from verl_falcon_plugin.rewards.math_tier1 import Tier1Verdict, compare
from verl_falcon_plugin.rewards.math_verify_runner import DEFAULT_TIMEOUT_S, MathVerifyPool, default_pool
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus


def gold_answers(ground_truth: Any) -> list[str]:
    """The acceptable reference answers: a string, a number, or a list of them (e.g. a numpy array)."""
    if hasattr(ground_truth, "tolist") and not isinstance(ground_truth, str):
        ground_truth = ground_truth.tolist()
    items = list(ground_truth) if isinstance(ground_truth, (list, tuple)) else [ground_truth]
    golds = []
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            raise ValueError(
                "math ground_truth must be a non-empty string (the reference answer, e.g. '\\frac{1}{2}'), "
                f"a number, or a list of them; got {ground_truth!r}"
            )
        golds.append(item.strip())
    if not golds:
        raise ValueError("math ground_truth is an empty list: give at least one reference answer")
    return golds


def _tier1(golds: list[str], predicted: str | None) -> RewardResult | None:
    if predicted is None:
        return None
    verdicts = [compare(gold, predicted) for gold in golds]
    meta = {"tier": 1, "extracted": predicted}
    if Tier1Verdict.EQUAL in verdicts:
        return RewardResult(1.0, RewardStatus.CORRECT, meta)
    if all(v is Tier1Verdict.DIFFERENT for v in verdicts):
        return RewardResult(0.0, RewardStatus.WRONG, meta)
    return None


def math_reward(
    response: str,
    ground_truth: Any,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: MathVerifyPool | None = None,
) -> RewardResult:
    """Binary math reward of ``response`` against the reference answer(s) ``ground_truth``."""
    golds = gold_answers(ground_truth)
    predicted = extract_answer(response)
    decided = _tier1(golds, predicted)
    if decided is not None:
        return decided
    # math-verify gets the boxed answer when there is one, else the whole answer part
    # (its own extraction is the fallback for unboxed answers).
    prediction = "\\boxed{" + predicted + "}" if predicted is not None else answer_part(response)
    if not prediction.strip():
        return RewardResult(0.0, RewardStatus.NO_ANSWER, {"tier": 1, "extracted": None})
    pool = pool or default_pool()
    meta: dict[str, Any] = {"tier": 2, "extracted": predicted, "math_verify_s": 0.0}
    unsure = None
    for gold in golds:
        outcome = pool.verify(gold, prediction, timeout_s=timeout_s)
        meta["math_verify_s"] = round(meta["math_verify_s"] + outcome.seconds, 4)
        if outcome.status is RewardStatus.CORRECT:
            return RewardResult(1.0, RewardStatus.CORRECT, meta)
        if outcome.status is not RewardStatus.WRONG:
            unsure = outcome  # a TIMEOUT or ERROR on one gold is never reported as WRONG
    if unsure is not None:
        return RewardResult(0.0, unsure.status, {**meta, "detail": unsure.detail})
    return RewardResult(0.0, RewardStatus.NO_ANSWER if predicted is None else RewardStatus.WRONG, meta)
