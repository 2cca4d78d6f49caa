"""A generator that replays a scripted reward pattern, for property tests."""

from __future__ import annotations

from verl_falcon_plugin.sampling.groups import Group


class ScriptedGenerator:
    """Group ``k`` (counting across calls) gets ``pattern[k % len(pattern)]`` as its rewards."""

    def __init__(self, pattern: list[tuple[float, ...]]) -> None:
        self.pattern = pattern
        self.calls = 0
        self.produced = 0
        self.log: list[Group] = []

    def __call__(self, num_prompts: int, policy_version: int) -> list[Group]:
        groups = []
        for _ in range(num_prompts):
            k = self.produced
            groups.append(Group(f"u{k}", k % len(self.pattern), self.pattern[k % len(self.pattern)], policy_version))
            self.produced += 1
        self.calls += 1
        self.log.extend(groups)
        return groups
