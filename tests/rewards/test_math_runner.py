"""math-verify under a deadline from threads and event loops: TIMEOUT, never a hang or a silent 0."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from verl_falcon_plugin.rewards.math import math_reward as cached_math_reward
from verl_falcon_plugin.rewards.math_cache import VerdictCache
from verl_falcon_plugin.rewards.math_verify_runner import MathVerifyPool
from verl_falcon_plugin.rewards.result import RewardStatus

PATHOLOGICAL = "<think>x</think>\\boxed{9^{9^{9^9}}}"
NEEDS_TIER2 = "<think>x</think>\\boxed{2^{1/3}}"  # = cube root of 2: tier 1 abstains, math-verify decides
BOUND_S = 2.0


def math_reward(*args, **kwargs):
    """Every call here must reach a worker: no verdict cache (0 entries keeps only the in-flight sharing)."""
    return cached_math_reward(*args, cache=VerdictCache(0), **kwargs)


HANG_GUARD_S = 60.0  # generous: only there so that a regression fails instead of hanging the suite


@pytest.fixture(scope="module")
def pool():
    pool = MathVerifyPool(max_workers=2)
    yield pool
    pool.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child that was reaped is gone; a zombie would still answer kill(0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_math_verify_own_timeout_cannot_run_in_a_thread():
    """The upstream problem this module exists for: math-verify's signal.alarm raises off the main thread."""
    from math_verify import parse

    errors = []

    def call():
        try:
            parse("\\boxed{1}")
        except ValueError as err:
            errors.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert errors and "threaded environment" in str(errors[0])


def test_pathological_input_times_out_in_a_worker_thread(pool):
    results = []
    thread = threading.Thread(
        target=lambda: results.append(math_reward(PATHOLOGICAL, "1", pool=pool, timeout_s=BOUND_S))
    )
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), "math reward hung"
    (result,) = results
    assert result.status is RewardStatus.TIMEOUT and result.score == 0.0
    assert result.metadata["math_verify_s"] >= BOUND_S
    # the pool recovers: a correct answer right after is CORRECT, not a silent 0
    assert math_reward(NEEDS_TIER2, "\\sqrt[3]{2}", pool=pool).status is RewardStatus.CORRECT


def test_pathological_input_times_out_in_an_asyncio_executor(pool):
    async def main():
        loop = asyncio.get_running_loop()
        slow = loop.run_in_executor(None, lambda: math_reward(PATHOLOGICAL, "1", pool=pool, timeout_s=BOUND_S))
        fast = loop.run_in_executor(None, lambda: math_reward(NEEDS_TIER2, "\\sqrt[3]{2}", pool=pool))
        return await asyncio.wait_for(asyncio.gather(slow, fast), HANG_GUARD_S)

    slow, fast = asyncio.run(main())
    assert slow.status is RewardStatus.TIMEOUT
    assert fast.status is RewardStatus.CORRECT and fast.score == 1.0


def test_stuck_worker_is_killed_and_replaced(pool):
    before = {w.process.pid for w in list(pool._idle)}
    assert math_reward(PATHOLOGICAL, "1", pool=pool, timeout_s=BOUND_S).status is RewardStatus.TIMEOUT
    # the worker that ran it is gone (not left computing 9^9^9^9 forever, as a plain ProcessPoolExecutor would)
    after = {w.process.pid for w in list(pool._idle)}
    for pid in before - after:
        assert not _alive(pid)
    assert pool._started <= pool.max_workers


def test_dead_worker_is_an_error_not_a_zero(pool):
    assert math_reward(NEEDS_TIER2, "\\sqrt[3]{2}", pool=pool).status is RewardStatus.CORRECT
    for worker in list(pool._idle):
        worker.process.kill()
        worker.process.wait()
    result = math_reward(NEEDS_TIER2, "\\sqrt[3]{2}", pool=pool)
    assert result.status is RewardStatus.ERROR and "died" in result.metadata["detail"]
    assert math_reward(NEEDS_TIER2, "\\sqrt[3]{2}", pool=pool).status is RewardStatus.CORRECT


def test_many_threads_share_two_workers(pool):
    jobs = [(NEEDS_TIER2, "\\sqrt[3]{2}", RewardStatus.CORRECT), (PATHOLOGICAL, "1", RewardStatus.TIMEOUT)] + [
        ("<think>x</think>\\boxed{3^{1/3}}", "\\sqrt[3]{3}", RewardStatus.CORRECT),  # both tier 2
        ("<think>x</think>\\boxed{3^{1/3}}", "\\sqrt[3]{2}", RewardStatus.WRONG),
    ] * 6
    with ThreadPoolExecutor(8) as executor:
        # only the pathological job gets the tight bound: on a loaded CI box the others may be slow, never stuck
        futures = [
            executor.submit(math_reward, r, g, pool=pool, timeout_s=BOUND_S if r is PATHOLOGICAL else HANG_GUARD_S / 2)
            for r, g, _ in jobs
        ]
        results = [f.result(timeout=HANG_GUARD_S) for f in futures]
    assert [r.status for r in results] == [s for _, _, s in jobs]


def test_a_worker_that_cannot_start_is_a_clear_error():
    broken = MathVerifyPool(max_workers=1, python="/bin/false")  # an interpreter that exits at once
    try:
        with pytest.raises(RuntimeError, match="math-verify worker exited before it was ready"):
            broken.verify("1", "\\boxed{1}")
    finally:
        broken.close()
