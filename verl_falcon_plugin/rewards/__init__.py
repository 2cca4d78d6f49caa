"""Verifiable rewards for Falcon-H1R: two-tier math, code through Sandbox-Fusion, an LLM
judge for science, and a format penalty, behind one verl-compatible ``compute_score``.

Nothing here imports verl or torch. Attributes are loaded on first use, so that
``import verl_falcon_plugin.rewards`` stays cheap (math-verify pulls in sympy).
"""

from verl_falcon_plugin.lazy import lazy_exports
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus

_LAZY = {
    "compute_score": ".router",
    "compute_score_async": ".router",
    "compute_score_batch": ".router",
    "resolve_domain": ".router",
    "math_reward": ".math",
    "math_rewards": ".math",
    "VerdictCache": ".math_cache",
    "MathVerifyPool": ".math_verify_runner",
    "extract_answer": ".extract",
    "check_format": ".format",
    "think_tags_survive_decode": ".format",
    "judge_reward": ".judge",
    "JudgeClient": ".judge",
    "code_reward": ".code",
}

__all__ = ["RewardResult", "RewardStatus", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
