"""The online batch builder: drives a generator callback and one strategy, step by step.

Framework-free (numpy only): the simulator benchmark, the property tests and the
preflight use it directly, and it is the reference the verl sampler
(``verl_sampler.FalconOnlineSampler``) is checked against.

A *generation call* is one call of the generator for ``gen_batch_prompts`` prompts
(G rollouts each): the unit the paper's "30% fewer generation calls" counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import fmean

import numpy as np

from verl_falcon_plugin.sampling.cache import GenerationCache
from verl_falcon_plugin.sampling.config import CONFIG_PREFIX, CacheConfig, SamplingConfig
from verl_falcon_plugin.sampling.groups import Group
from verl_falcon_plugin.sampling.strategies import STRATEGIES

logger = logging.getLogger(__name__)

#: ``generator(num_prompts, policy_version)`` -> exactly ``num_prompts`` groups of that version
Generator = Callable[[int, int], Sequence[Group]]


class GenerationBudgetExceeded(RuntimeError):
    """Backfill could not fill a batch within ``max_generation_calls_per_step`` calls (with ``on_budget_exhausted``
    at its default, ``raise``)."""


@dataclass(frozen=True)
class StepMetrics:
    generation_calls: int
    prompts_generated: int
    zero_advantage_groups: int
    cache_hits: int
    cache_evicted_age: int
    cache_evicted_size: int
    cache_evicted_refresh: int
    discarded_surplus: int
    cache_size: int
    batch_size: int
    target: int
    mean_age: float
    #: 1 when the step hit ``max_generation_calls_per_step`` and trained on a partial batch (``train_partial``)
    budget_exhausted: int = 0

    @property
    def zero_advantage_fraction(self) -> float:
        return self.zero_advantage_groups / self.prompts_generated if self.prompts_generated else 0.0

    @property
    def batch_fill(self) -> float:
        return self.batch_size / self.target

    def as_dict(self, prefix: str = "falcon_sampling/") -> dict[str, float]:
        values = {name: float(getattr(self, name)) for name in self.__dataclass_fields__}
        values["zero_advantage_fraction"] = self.zero_advantage_fraction
        values["batch_fill"] = self.batch_fill
        return {f"{prefix}{k}": v for k, v in values.items()}


@dataclass(frozen=True)
class StepResult:
    batch: list[Group]
    metrics: StepMetrics


class _StepContext:
    """One step's view for a strategy (implements ``strategies.BuildContext``)."""

    def __init__(self, batcher: OnlineBatcher, policy_version: int) -> None:
        self._batcher = batcher
        self.target = batcher.batch_size
        self.policy_version = policy_version
        self.rng = batcher.rng
        self.calls = 0
        self.prompts = 0
        self.zero_advantage = 0
        self.discarded = 0
        self.budget_exhausted = False

    @property
    def gen_batch_prompts(self) -> int:
        return self._batcher.gen_batch_prompts

    def check_call_budget(self) -> bool:
        """True while another generation call is allowed. At the limit: raises (``on_budget_exhausted=raise``)
        or, with ``train_partial``, logs a WARNING, records it and returns False (the batch stays partial)."""
        config = self._batcher.config
        if self.calls < config.max_generation_calls_per_step:
            return True
        message = (
            f"{config.strategy} made {self.calls} generation calls at policy version {self.policy_version} "
            f"without filling a batch of {self.target} groups with signal ({self.zero_advantage} of {self.prompts} "
            "generated groups had zero advantage)"
        )
        if not config.trains_partial_batches:
            raise GenerationBudgetExceeded(
                f"{message}; raise {CONFIG_PREFIX}.max_generation_calls_per_step, filter the dataset, or set "
                f"{CONFIG_PREFIX}.on_budget_exhausted=train_partial"
            )
        if not self.budget_exhausted:
            logger.warning("%s; training on the groups collected so far (on_budget_exhausted=train_partial)", message)
        self.budget_exhausted = True
        return False

    def generate_call(self, num_prompts: int | None = None) -> list[Group]:
        size = self.gen_batch_prompts if num_prompts is None else num_prompts
        groups = list(self._batcher.generator(size, self.policy_version))
        self._check_generated(groups, size)
        self.calls += 1
        self.prompts += len(groups)
        kept = [g for g in groups if g.has_signal]
        self.zero_advantage += len(groups) - len(kept)
        return kept

    def _check_generated(self, groups: list[Group], size: int) -> None:
        if len(groups) != size:
            raise ValueError(f"the generator returned {len(groups)} groups for {size} prompts; it must return one each")
        wrong = [g.uid for g in groups if g.policy_version != self.policy_version]
        if wrong:
            raise ValueError(
                f"the generator returned groups {wrong[:3]} not stamped with policy version {self.policy_version}"
            )

    def take_cached(self, count: int) -> list[Group]:
        cache = self._batcher.cache
        return cache.take(count, self.policy_version) if cache is not None else []

    def keep_surplus(self, groups: list[Group]) -> None:
        if self._batcher.cache is None:
            self.discarded += len(groups)
        else:
            self._batcher.cache.put(groups)


class OnlineBatcher:
    """Builds one training batch per call of :meth:`next_batch`; deterministic given ``config.seed``
    and a deterministic generator."""

    def __init__(
        self,
        config: SamplingConfig,
        generator: Generator,
        batch_size: int,
        gen_batch_prompts: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.config = config
        self.generator = generator
        self.batch_size = batch_size
        self.gen_batch_prompts = batch_size if gen_batch_prompts is None else gen_batch_prompts
        if self.gen_batch_prompts < 1:
            raise ValueError(f"gen_batch_prompts must be >= 1, got {self.gen_batch_prompts}")
        self.rng = np.random.default_rng(config.seed)
        self.cache = GenerationCache(config.cache) if config.cache.enabled else None
        self._strategy = STRATEGIES[config.strategy]

    def next_batch(self, policy_version: int) -> StepResult:
        """The batch for the update that produces ``policy_version + 1`` (also the refresh step counter)."""
        if self.cache is not None:
            self.cache.refresh_if_due(policy_version)
        ctx = _StepContext(self, policy_version)
        batch = self._strategy(ctx)
        return StepResult(batch, self._metrics(ctx, batch))

    def _metrics(self, ctx: _StepContext, batch: list[Group]) -> StepMetrics:
        counters = self.cache.drain_counters().as_dict() if self.cache is not None else {}
        return StepMetrics(
            generation_calls=ctx.calls,
            prompts_generated=ctx.prompts,
            zero_advantage_groups=ctx.zero_advantage,
            cache_hits=counters.get("hits", 0),
            cache_evicted_age=counters.get("evicted_age", 0),
            cache_evicted_size=counters.get("evicted_size", 0),
            cache_evicted_refresh=counters.get("evicted_refresh", 0),
            discarded_surplus=ctx.discarded,
            cache_size=len(self.cache) if self.cache is not None else 0,
            batch_size=len(batch),
            target=ctx.target,
            mean_age=fmean(g.age(ctx.policy_version) for g in batch) if batch else 0.0,
            budget_exhausted=int(ctx.budget_exhausted),
        )


def plain_backfill(config: SamplingConfig) -> SamplingConfig:
    """The same settings without the cache: the baseline the cache is measured against."""
    return SamplingConfig(
        strategy="backfill",
        cache=CacheConfig(max_groups=0, max_age_steps=config.cache.max_age_steps),
        max_generation_calls_per_step=config.max_generation_calls_per_step,
        reward_metric=config.reward_metric,
        seed=config.seed,
        on_budget_exhausted=config.on_budget_exhausted,
    )
