"""Online-sampling settings, validated with errors that name the field and the fix.

In a verl run they come from ``trainer.v1.sampler.sampler_kwargs`` (a free-form
dict in verl's config, which ``+plugin=falcon_h1r`` fills): verl hands that dict
to the custom sampler's constructor untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

#: where the keys live in a verl config; used in error messages
CONFIG_PREFIX = "trainer.v1.sampler.sampler_kwargs"

#: what ``on_budget_exhausted`` may say: stop the run, or train on the groups collected so far
BUDGET_POLICIES = ("raise", "train_partial")


class SamplingConfigError(ValueError):
    """A sampling setting is invalid; the message names the key and the fix."""


def _fail(key: str, problem: str, fix: str) -> SamplingConfigError:
    return SamplingConfigError(f"{CONFIG_PREFIX}.{key}: {problem}; {fix}")


@dataclass(frozen=True)
class CacheConfig:
    """The generation cache of surplus valid groups (backfill only).

    ``max_groups``: bound on cached groups; 0 disables the cache (plain backfill).
    ``max_age_steps``: a group generated ``age`` policy updates ago is used only while
    ``age <= max_age_steps``; older ones are evicted, never trained on.
    ``refresh_every_steps``: when set to K, the whole cache is dropped at every step
    that is a multiple of K (the paper's optional periodic refresh).
    """

    max_groups: int = 128
    max_age_steps: int = 1
    refresh_every_steps: int | None = None

    def __post_init__(self) -> None:
        _require_int("cache.max_groups", self.max_groups, minimum=0)
        _require_int("cache.max_age_steps", self.max_age_steps, minimum=0)
        if self.refresh_every_steps is not None:
            _require_int("cache.refresh_every_steps", self.refresh_every_steps, minimum=1, allow_null=True)

    @property
    def enabled(self) -> bool:
        return self.max_groups > 0


@dataclass(frozen=True)
class SamplingConfig:
    """``strategy``: ``backfill`` (default), ``reject`` or ``duplicate`` (see ``strategies``).

    ``max_generation_calls_per_step``: backfill stops after this many generator calls in
    one step (a dataset whose groups are all zero-advantage would otherwise loop forever).
    ``on_budget_exhausted`` says what happens then: ``raise`` (default) stops the run with
    :class:`~.batcher.GenerationBudgetExceeded`; ``train_partial`` trains on the groups
    with signal collected so far (a smaller batch), logs a WARNING and reports the
    ``budget_exhausted`` metric. ``reward_metric``: which reward the zero-advantage test
    reads in verl (``reward`` = the canonical ``rm_scores``; other names read
    ``reward_extra_info``), as in ``algorithm.filter_groups.metric``.
    """

    strategy: str = "backfill"
    cache: CacheConfig = field(default_factory=CacheConfig)
    max_generation_calls_per_step: int = 16
    reward_metric: str = "reward"
    seed: int = 0
    on_budget_exhausted: str = "raise"

    def __post_init__(self) -> None:
        from verl_falcon_plugin.sampling.strategies import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise _fail("strategy", f"unknown strategy {self.strategy!r}", f"use one of {sorted(STRATEGIES)}")
        if self.strategy != "backfill" and self.cache.enabled:
            raise _fail(
                "cache.max_groups",
                f"the generation cache only serves strategy=backfill, got strategy={self.strategy!r} "
                f"with cache.max_groups={self.cache.max_groups}",
                "set cache.max_groups=0 or strategy=backfill",
            )
        _require_int("max_generation_calls_per_step", self.max_generation_calls_per_step, minimum=1)
        if not isinstance(self.reward_metric, str) or not self.reward_metric:
            raise _fail("reward_metric", f"must be a non-empty string, got {self.reward_metric!r}", "e.g. 'reward'")
        _require_int("seed", self.seed, minimum=0)
        if self.on_budget_exhausted not in BUDGET_POLICIES:
            raise _fail(
                "on_budget_exhausted", f"unknown policy {self.on_budget_exhausted!r}", f"use one of {BUDGET_POLICIES}"
            )

    @property
    def trains_partial_batches(self) -> bool:
        """Whether an exhausted generation budget trains on what was collected instead of raising."""
        return self.on_budget_exhausted == "train_partial"

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> SamplingConfig:
        """Build from a plain or OmegaConf mapping; unknown keys are errors (a typo must not be ignored)."""
        values = dict(values or {})
        _reject_unknown(values, {f.name for f in fields(cls)}, prefix="")
        cache_values = values.pop("cache", None) or {}
        if not isinstance(cache_values, Mapping):
            raise _fail("cache", f"must be a mapping, got {type(cache_values).__name__}", "e.g. {max_groups: 128}")
        cache_values = dict(cache_values)
        _reject_unknown(cache_values, {f.name for f in fields(CacheConfig)}, prefix="cache.")
        return cls(cache=CacheConfig(**cache_values), **values)


def _reject_unknown(values: Mapping[str, Any], known: set[str], prefix: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise _fail(f"{prefix}{unknown[0]}", "unknown key", f"known keys are {sorted(known)}")


def _require_int(key: str, value: Any, minimum: int, allow_null: bool = False) -> None:
    if value is None and allow_null:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, f"must be an integer, got {value!r}", f"set an integer >= {minimum}")
    if value < minimum:
        raise _fail(key, f"must be >= {minimum}, got {value}", f"set an integer >= {minimum}")
