"""Online sampling for GRPO (Falcon-H1R Sec. 3.2): backfill / reject / duplicate and a generation cache.

Framework-free (numpy): the verl integration is the custom sampler in
``verl_falcon_plugin.sampling.verl_sampler`` (with ``verl_duplicate``: copies under fresh
TransferQueue keys, and ``verl_checkpoint``: the cache in verl's checkpoints), loaded by verl
from ``trainer.v1.sampler.custom_sampler`` and ``trainer.checkpoint_callback_class`` and
imported only there.
"""

from verl_falcon_plugin.sampling.batcher import (
    GenerationBudgetExceeded,
    OnlineBatcher,
    StepMetrics,
    StepResult,
    plain_backfill,
)
from verl_falcon_plugin.sampling.cache import CacheCounters, GenerationCache
from verl_falcon_plugin.sampling.config import CacheConfig, SamplingConfig, SamplingConfigError
from verl_falcon_plugin.sampling.groups import Group, split_by_signal
from verl_falcon_plugin.sampling.strategies import STRATEGIES, register_strategy

__all__ = [
    "STRATEGIES",
    "CacheConfig",
    "CacheCounters",
    "GenerationBudgetExceeded",
    "GenerationCache",
    "Group",
    "OnlineBatcher",
    "SamplingConfig",
    "SamplingConfigError",
    "StepMetrics",
    "StepResult",
    "plain_backfill",
    "register_strategy",
    "split_by_signal",
]
