"""The code reward against an embedded sandbox this check starts itself."""

from __future__ import annotations

import os

from verl_falcon_plugin.preflight.registry import CheckResult, register_check

_TESTS = {"inputs": ["2 3\n", "10 -4\n"], "outputs": ["5\n", "6\n"]}
_CORRECT = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
_INCORRECT = "```python\na, b = map(int, input().split())\nprint(a * b)\n```"


@register_check("rewards.sandbox", area="rewards")
def sandbox() -> CheckResult:
    """A correct and an incorrect program through ``code_reward`` -> embedded sandbox -> scores 1 and 0."""
    if os.geteuid() != 0:
        return CheckResult.skipped(
            "the embedded sandbox runs code under dedicated uids and must start as root; "
            "point code_reward at a Sandbox-Fusion deployment instead"
        )
    from verl_falcon_plugin.rewards.code import code_reward
    from verl_falcon_plugin.rewards.result import RewardStatus
    from verl_falcon_plugin.rewards.sandbox import SandboxServer

    try:
        server = SandboxServer(workers=2)
    except RuntimeError as err:  # a host refusing an isolation mechanism: the server says which and why
        return CheckResult.failed(f"the embedded sandbox refused to start: {err}")
    with server:
        isolation = server.sandbox.isolation()
        correct = code_reward(_CORRECT, _TESTS, endpoints=[server.url], run_timeout=5)
        incorrect = code_reward(_INCORRECT, _TESTS, endpoints=[server.url], run_timeout=5)
    cgroup = f"v{isolation['cgroup']['version']}" if isolation["cgroup"] else "none"
    summary = (
        f"correct -> {correct.status.value} {correct.score:g}, incorrect -> {incorrect.status.value} "
        f"{incorrect.score:g}; namespaces {','.join(isolation['namespaces']) or 'none'}, "
        f"process cap binds: {isolation['process_cap_binds']}, cgroup: {cgroup}, "
        f"tmpfs work dir: {isolation['workdir_tmpfs']}, seccomp: {bool(isolation['seccomp'])}"
    )
    if correct.status is RewardStatus.CORRECT and incorrect.status is RewardStatus.WRONG:
        return CheckResult.passed(summary)
    return CheckResult.failed(f"{summary}; details: {correct.metadata} / {incorrect.metadata}")
