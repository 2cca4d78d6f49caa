"""The verdict cache: one math-verify call per distinct (gold, answer), bounded, never keeping a TIMEOUT."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from verl_falcon_plugin.rewards.math import math_rewards
from verl_falcon_plugin.rewards.math_cache import VerdictCache
from verl_falcon_plugin.rewards.math_verify_runner import VerifyOutcome
from verl_falcon_plugin.rewards.result import RewardStatus


class CountingPool:
    """Stands in for MathVerifyPool: counts calls and answers from a table (the verdicts are not under test)."""

    max_workers = 4

    def __init__(self, delay_s: float = 0.0, status: RewardStatus = RewardStatus.WRONG):
        self.calls: list[tuple[str, str]] = []
        self.delay_s = delay_s
        self.status = status
        self._lock = threading.Lock()

    def verify(self, gold: str, prediction: str, timeout_s: float = 10.0) -> VerifyOutcome:
        with self._lock:
            self.calls.append((gold, prediction))
        time.sleep(self.delay_s)
        return VerifyOutcome(self.status, self.delay_s)


def response(answer: str) -> str:
    return f"<think>work</think>So the answer is $\\boxed{{{answer}}}$."


def test_a_group_pays_one_math_verify_call_per_distinct_answer():
    pool = CountingPool(delay_s=0.05)  # slow enough that identical answers are in flight together
    answers = ["\\{1,2\\}"] * 6 + ["\\{1,3\\}"] * 5 + ["\\{2,4\\}"] * 5  # sets: never decided by tier 1
    results = math_rewards([response(a) for a in answers], ["\\{1,5\\}"] * 16, pool=pool, cache=VerdictCache())
    assert sorted(pool.calls) == sorted({("\\{1,5\\}", f"\\boxed{{{a}}}") for a in answers})
    assert sum(not r.metadata["cached"] for r in results) == 3
    assert all(r.status is RewardStatus.WRONG and r.metadata["tier"] == 2 for r in results)


def test_tier1_decisions_never_reach_the_pool():
    pool = CountingPool()
    results = math_rewards([response("\\frac{2}{4}"), response("0.75")], ["\\frac{1}{2}", "\\frac34"], pool=pool)
    assert [r.score for r in results] == [1.0, 1.0] and pool.calls == []


def test_timeouts_are_not_cached():
    pool = CountingPool(status=RewardStatus.TIMEOUT)
    cache = VerdictCache()
    for _ in range(2):
        (result,) = math_rewards([response("\\{1\\}")], ["\\{2\\}"], pool=pool, cache=cache)
        assert result.status is RewardStatus.TIMEOUT
    assert len(pool.calls) == 2 and len(cache) == 0


def test_bounded_lru():
    cache = VerdictCache(max_entries=2)
    done = VerifyOutcome(RewardStatus.CORRECT, 0.0)
    for key in ("a", "b", "a", "c"):  # "a" used again, so "b" is the least recent
        cache.get_or_compute(key, lambda: done)
    assert len(cache) == 2
    assert cache.get_or_compute("a", lambda: done)[1] and not cache.get_or_compute("b", lambda: done)[1]


def test_a_failing_computation_reaches_every_waiter_and_is_not_kept():
    cache = VerdictCache()
    started = threading.Event()

    def boom():
        started.set()
        time.sleep(0.1)
        raise RuntimeError("worker crashed")

    with ThreadPoolExecutor(2) as threads:
        first = threads.submit(cache.get_or_compute, "k", boom)
        started.wait(5)
        second = threads.submit(cache.get_or_compute, "k", lambda: pytest.fail("computed twice"))
        for future in (first, second):
            with pytest.raises(RuntimeError, match="worker crashed"):
                future.result(5)
    assert len(cache) == 0


def test_bad_size_is_an_error():
    with pytest.raises(ValueError, match="max_entries"):
        VerdictCache(-1)
