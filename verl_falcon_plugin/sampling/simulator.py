"""A synthetic GRPO generator: prompts with per-prompt pass rates, binary rewards, a drifting policy.

Pass rates follow the paper's RL-data filtering (Sec. 3.1) applied to a prior for
the SFT model's per-prompt success rate, which yields the "mirrored-J" shape the
paper reports (many hard prompts, few easy ones):

1. prior ``q ~ Beta(prior_a, prior_b)`` (default Beta(0.3, 1.5): mass piled at 0,
   a thin tail to 1; the paper does not give the prior, this is our choice);
2. 8 SFT rollouts per prompt: 8/8 correct -> removed; 0/8 correct -> kept with
   probability ``keep_unsolved`` (the paper keeps the "no consistent error" and a
   small random subset of truncated ones; 0.3 is our choice); otherwise kept.

During RL the policy improves: a prompt's pass rate at policy version ``v`` is
``sigmoid(logit(q) + drift * v)``. Rewards of a group are G Bernoulli draws.
Everything is drawn from one seeded numpy Generator, so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from verl_falcon_plugin.sampling.groups import Group


@dataclass(frozen=True)
class DifficultyModel:
    prior_a: float = 0.3
    prior_b: float = 1.5
    filter_rollouts: int = 8
    keep_unsolved: float = 0.3


def mirrored_j_pass_rates(num_prompts: int, model: DifficultyModel, rng: np.random.Generator) -> np.ndarray:
    """Per-prompt pass rates of the SFT model over the filtered RL set (``num_prompts`` survivors)."""
    kept: list[np.ndarray] = []
    total = 0
    while total < num_prompts:
        q = rng.beta(model.prior_a, model.prior_b, size=2 * num_prompts)
        solved = rng.binomial(model.filter_rollouts, q)
        keep = (solved < model.filter_rollouts) & ((solved > 0) | (rng.random(q.shape) < model.keep_unsolved))
        kept.append(q[keep])
        total += int(keep.sum())
    return np.concatenate(kept)[:num_prompts]


class SyntheticGenerator:
    """``generator(num_prompts, policy_version)`` for :class:`~.batcher.OnlineBatcher`; counts its calls."""

    def __init__(
        self,
        pass_rates: np.ndarray,
        group_size: int = 16,
        drift_per_step: float = 0.0,
        seed: int = 0,
    ) -> None:
        if group_size < 2:
            raise ValueError(f"group_size must be >= 2 for GRPO, got {group_size}")
        self.logits = np.log(np.clip(pass_rates, 1e-6, 1 - 1e-6) / np.clip(1 - pass_rates, 1e-6, 1))
        self.group_size = group_size
        self.drift_per_step = drift_per_step
        self.rng = np.random.default_rng(seed)
        self.calls = 0
        self.prompts = 0
        self._order = np.empty(0, dtype=np.int64)
        self._cursor = 0

    def _next_prompt_ids(self, count: int) -> np.ndarray:
        ids = []
        while count > 0:
            if self._cursor == len(self._order):
                self._order = self.rng.permutation(len(self.logits))
                self._cursor = 0
            take = min(count, len(self._order) - self._cursor)
            ids.append(self._order[self._cursor : self._cursor + take])
            self._cursor += take
            count -= take
        return np.concatenate(ids)

    def pass_rate(self, prompt_ids: np.ndarray, policy_version: int) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.logits[prompt_ids] + self.drift_per_step * policy_version)))

    def __call__(self, num_prompts: int, policy_version: int) -> list[Group]:
        prompt_ids = self._next_prompt_ids(num_prompts)
        p = self.pass_rate(prompt_ids, policy_version)
        rewards = (self.rng.random((num_prompts, self.group_size)) < p[:, None]).astype(float)
        groups = [
            Group(f"g{self.prompts + i}", int(pid), tuple(r), policy_version)
            for i, (pid, r) in enumerate(zip(prompt_ids, rewards, strict=True))
        ]
        self.calls += 1
        self.prompts += num_prompts
        return groups
