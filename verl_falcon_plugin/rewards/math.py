"""The math reward, the paper's cascade: tier 1 may accept; what it cannot prove goes to math-verify.

==================================  =====================================================
extracted answer vs gold            outcome
==================================  =====================================================
tier 1 EQUAL (:mod:`.math_tier1`)   CORRECT, math-verify not called
tier 1 DIFFERENT                    WRONG, math-verify not called. Only when both sides are
                                    unambiguous exact numbers and nothing else: plain integers
                                    or decimals, or constant expressions without a decimal
                                    point (exact arithmetic proves it; math-verify's float
                                    tolerance would accept ``1/2006!`` for ``1/2004!``)
anything else                       math-verify in a worker process under a deadline, once
                                    per distinct (gold, answer): :mod:`.math_cache`
stated / no answer extracted        math-verify on the answer part (its own extraction: its
                                    rules for running text, e.g. ``Answer: 3,5`` is 3.5, its
                                    last-number fallback); NO_ANSWER if it finds nothing
==================================  =====================================================

The score is binary. TIMEOUT and ERROR score 0 but keep their status, so that a trainer or
a report can tell "wrong" from "could not check". Several acceptable golds (a list) score 1
when any of them matches. ``metadata["tier"]`` is 1 (decided by tier 1) or 2 (by
math-verify), and ``metadata["cached"]`` says whether the math-verify verdict was reused.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from verl_falcon_plugin.rewards.extract import BOXED, answer_part, extract_answer_and_source
from verl_falcon_plugin.rewards.math_cache import VerdictCache, default_cache
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


def _math_verify(
    golds: list[str],
    prediction: str,
    answer_key: tuple[str, str],
    predicted: str | None,
    timeout_s: float,
    pool: MathVerifyPool,
    cache: VerdictCache,
) -> RewardResult:
    meta: dict[str, Any] = {"tier": 2, "extracted": predicted, "math_verify_s": 0.0, "cached": True}
    unsure = None
    for gold in golds:
        outcome, cached = cache.get_or_compute(
            (gold, answer_key), lambda gold=gold: pool.verify(gold, prediction, timeout_s=timeout_s)
        )
        if not cached:
            meta["cached"] = False
            meta["math_verify_s"] = round(meta["math_verify_s"] + outcome.seconds, 4)
        if outcome.status is RewardStatus.CORRECT:
            return RewardResult(1.0, RewardStatus.CORRECT, meta)
        if outcome.status is not RewardStatus.WRONG:
            unsure = outcome  # a TIMEOUT or ERROR on one gold is never reported as WRONG
    if unsure is not None:
        return RewardResult(0.0, unsure.status, {**meta, "detail": unsure.detail})
    return RewardResult(0.0, RewardStatus.NO_ANSWER if predicted is None else RewardStatus.WRONG, meta)


def math_reward(
    response: str,
    ground_truth: Any,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: MathVerifyPool | None = None,
    cache: VerdictCache | None = None,
) -> RewardResult:
    """Binary math reward of ``response`` against the reference answer(s) ``ground_truth``."""
    golds = gold_answers(ground_truth)
    predicted, source = extract_answer_and_source(response)
    if predicted is not None:
        verdicts = [compare(gold, predicted) for gold in golds]
        meta = {"tier": 1, "extracted": predicted}
        if Tier1Verdict.EQUAL in verdicts:
            return RewardResult(1.0, RewardStatus.CORRECT, meta)
        if all(v is Tier1Verdict.DIFFERENT for v in verdicts):
            return RewardResult(0.0, RewardStatus.WRONG, meta)
        golds = [gold for gold, v in zip(golds, verdicts) if v is not Tier1Verdict.DIFFERENT]
    if source == BOXED:  # math-verify reads the box as it would in the response; one key per spelling
        prediction, answer_key = "\\boxed{" + predicted + "}", ("answer", " ".join(predicted.split()))
    else:  # a stated answer or none: math-verify reads the text itself (its rules for running text)
        prediction = answer_part(response)
        if not prediction.strip():
            return RewardResult(0.0, RewardStatus.NO_ANSWER, {"tier": 1, "extracted": None})
        answer_key = ("text", prediction)
    pool = default_pool() if pool is None else pool
    cache = default_cache() if cache is None else cache  # an empty cache is falsy (len 0): test for None
    return _math_verify(golds, prediction, answer_key, predicted, timeout_s, pool, cache)


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """Threads that only wait on math-verify workers (the work runs in their processes)."""
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(4 * (os.cpu_count() or 1), thread_name_prefix="falcon-h1r-math")
        return _threads


def math_rewards(
    responses: Sequence[str],
    ground_truths: Sequence[Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    pool: MathVerifyPool | None = None,
    cache: VerdictCache | None = None,
) -> list[RewardResult]:
    """:func:`math_reward` of each response against its ground truth, concurrently; results in order.

    Tier 1 decides in the calling threads; the rest share the pool's worker processes and the
    verdict cache, so a GRPO group's repeated answers cost one math-verify call.
    """
    if len(responses) != len(ground_truths):
        raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
    pool = default_pool() if pool is None else pool
    cache = default_cache() if cache is None else cache
    futures = [
        _executor().submit(math_reward, r, g, timeout_s=timeout_s, pool=pool, cache=cache)
        for r, g in zip(responses, ground_truths)
    ]
    return [f.result() for f in futures]
