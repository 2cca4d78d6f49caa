"""Preflight ``rewards.math``: the math cascade gives the right verdicts here (notations included), and
math-verify's time bound holds from a worker thread (where its own signal.alarm cannot)."""

from __future__ import annotations

import threading

from verl_falcon_plugin.preflight.registry import CheckResult, register_check

PAIRS = [  # (gold, what follows </think>, correct?) -- verdicts by hand
    ("\\frac{1}{2}", "\\boxed{0.5}", True),  # tier 1, exact
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}", True),  # tier 1, surd arithmetic
    ("\\frac{7}{2}", "\\boxed{3\\frac{1}{2}}", True),  # a mixed number is a sum
    ("\\frac{3}{2}", "\\boxed{3\\frac{1}{2}}", False),
    ("28\\%", "\\boxed{28}", True),  # a percent gold accepts the number
    ("\\sqrt[3]{2}", "\\boxed{2^{1/3}}", True),  # tier 2 (math-verify)
    ("\\{3,7\\}", "$\\boxed{3}$ and $\\boxed{7}$", True),  # several boxes: one answer (tier 2)
    ("7.78", "Final Answer: The final answer is 7.78. I hope it is correct.", True),
    ("(-\\infty,-1)\\cup(1,\\infty)", "\\boxed{(1,\\infty)\\cup(-\\infty,-1)}", True),
    ("\\frac{1}{2004!}", "\\boxed{\\frac{1}{2006!}}", False),  # math-verify alone accepts it
    ("x^2", "\\boxed{x^3}", False),
]
BOUND_S = 2.0


@register_check("rewards.math", "rewards")
def check_math_rewards() -> CheckResult:
    from verl_falcon_plugin.rewards.math import math_reward
    from verl_falcon_plugin.rewards.math_cache import VerdictCache
    from verl_falcon_plugin.rewards.math_verify_runner import MathVerifyPool
    from verl_falcon_plugin.rewards.result import RewardStatus

    pool = MathVerifyPool(max_workers=1)
    try:
        wrong = []
        for gold, answer, expected in PAIRS:
            result = math_reward(f"<think>x</think>{answer}", gold, pool=pool, cache=VerdictCache(0))
            if (result.status is RewardStatus.CORRECT) is not expected or result.status not in (
                RewardStatus.CORRECT,
                RewardStatus.WRONG,
            ):
                wrong.append(f"{answer} vs {gold}: {result.status.value}")
        if wrong:
            return CheckResult.failed("wrong verdicts: " + "; ".join(wrong))
        results = []
        thread = threading.Thread(
            target=lambda: results.append(math_reward("\\boxed{9^{9^{9^9}}}", "1", pool=pool, timeout_s=BOUND_S))
        )
        thread.start()
        thread.join(BOUND_S + 60)
        if thread.is_alive() or not results:
            return CheckResult.failed(f"math reward hung in a worker thread past {BOUND_S + 60:.0f}s")
        if results[0].status is not RewardStatus.TIMEOUT:
            return CheckResult.failed(f"9^9^9^9 in a thread gave {results[0].status.value}, expected timeout")
        after = math_reward("<think>x</think>\\boxed{2^{1/3}}", "\\sqrt[3]{2}", pool=pool)
        if after.status is not RewardStatus.CORRECT:
            return CheckResult.failed(f"after a timeout the pool answered {after.status.value}")
        return CheckResult.passed(
            f"{len(PAIRS)} pairs right; 9^9^9^9 timed out at {BOUND_S:.0f}s in a thread; pool recovered"
        )
    finally:
        pool.close()
