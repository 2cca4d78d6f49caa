"""Groups, cache, config and strategies, one behaviour at a time."""

from __future__ import annotations

import numpy as np
import pytest

from tests.sampling.scripted import ScriptedGenerator
from verl_falcon_plugin.sampling import (
    CacheConfig,
    GenerationBudgetExceeded,
    GenerationCache,
    Group,
    OnlineBatcher,
    SamplingConfig,
    SamplingConfigError,
)


def group(uid: str, version: int, rewards=(1.0, 0.0)) -> Group:
    return Group(uid, 0, tuple(rewards), version)


def test_zero_advantage_matches_verls_grpo_advantage():
    """Reference: verl's own GRPO estimator gives all-zero advantages exactly for the groups we call signal-free."""
    torch = pytest.importorskip("torch")
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 2, size=(200, 4)).astype(float)
    rewards[:20] = 1.0  # make sure both kinds of zero-advantage group are present
    rewards[20:40] = 0.0
    scores = torch.zeros(200 * 4, 3)
    scores[:, -1] = torch.tensor(rewards.reshape(-1))
    index = np.repeat(np.arange(200), 4)
    advantages, _ = core_algos.compute_grpo_outcome_advantage(scores, torch.ones_like(scores), index)
    verl_zero = (advantages[:, -1].reshape(200, 4).abs() == 0).all(dim=1).numpy()
    ours_zero = np.array([not Group(str(i), i, tuple(r), 0).has_signal for i, r in enumerate(rewards)])
    assert (ours_zero == verl_zero).all()
    assert 0 < ours_zero.sum() < 200


def test_group_needs_two_rollouts():
    with pytest.raises(ValueError, match="rollout.n >= 2"):
        Group("a", 0, (1.0,), 0)


def test_cache_evicts_oldest_first_beyond_its_bound():
    cache = GenerationCache(CacheConfig(max_groups=2, max_age_steps=5))
    assert cache.put([group("a", 0), group("b", 0), group("c", 1)]) == 1
    assert [g.uid for g in cache] == ["b", "c"]
    assert cache.take(1, policy_version=1)[0].uid == "b", "reads are oldest first"
    assert cache.drain_counters().as_dict() == dict(
        hits=1, inserted=3, evicted_age=0, evicted_size=1, evicted_refresh=0
    )


def test_cache_never_returns_a_group_beyond_the_age_limit():
    cache = GenerationCache(CacheConfig(max_groups=10, max_age_steps=1))
    cache.put([group("old", 0), group("new", 1)])
    assert [g.uid for g in cache.take(10, policy_version=2)] == ["new"]
    assert cache.drain_counters().evicted_age == 1


def test_cache_refresh_drops_everything_on_schedule():
    cache = GenerationCache(CacheConfig(max_groups=10, max_age_steps=9, refresh_every_steps=3))
    cache.put([group("a", 1)])
    assert cache.refresh_if_due(2) == 0 and len(cache) == 1
    assert cache.refresh_if_due(3) == 1 and len(cache) == 0


def test_cache_refuses_zero_advantage_groups():
    with pytest.raises(ValueError, match="zero advantage"):
        GenerationCache(CacheConfig()).put([group("z", 0, (1.0, 1.0))])


@pytest.mark.parametrize(
    "values,field",
    [
        ({"strategy": "bakfill"}, "sampler_kwargs.strategy"),
        ({"cache": {"max_groups": -1}}, "sampler_kwargs.cache.max_groups"),
        ({"cache": {"max_age_steps": 1.5}}, "sampler_kwargs.cache.max_age_steps"),
        ({"cache": {"refresh_every_steps": 0}}, "sampler_kwargs.cache.refresh_every_steps"),
        ({"cache": {"max_size": 3}}, "sampler_kwargs.cache.max_size"),
        ({"max_generation_calls_per_step": 0}, "sampler_kwargs.max_generation_calls_per_step"),
        ({"strategy": "reject"}, "sampler_kwargs.cache.max_groups"),
        ({"reward_metric": ""}, "sampler_kwargs.reward_metric"),
        ({"seed": True}, "sampler_kwargs.seed"),
        ({"on_budget_exhausted": "skip"}, "sampler_kwargs.on_budget_exhausted"),
    ],
)
def test_bad_config_names_the_field(values, field):
    with pytest.raises(SamplingConfigError, match=field.replace(".", r"\.")):
        SamplingConfig.from_mapping(values)


def test_defaults_are_backfill_with_a_cache():
    config = SamplingConfig.from_mapping({})
    assert config.strategy == "backfill" and config.cache.enabled


def test_backfill_gives_up_with_a_clear_error_when_nothing_has_signal():
    config = SamplingConfig(cache=CacheConfig(max_groups=0), max_generation_calls_per_step=3)
    batcher = OnlineBatcher(config, ScriptedGenerator([(1.0, 1.0)]), batch_size=2)
    with pytest.raises(GenerationBudgetExceeded, match="max_generation_calls_per_step"):
        batcher.next_batch(0)


def test_train_partial_trains_on_what_the_budget_collected(caplog):
    """1 group in 3 has signal: 3 calls of 2 prompts give 2 of the 4 groups wanted, and the step says so."""
    pattern = [(1.0, 1.0), (0.0, 1.0), (0.0, 0.0)]
    config = SamplingConfig(cache=CacheConfig(max_groups=0), max_generation_calls_per_step=3)
    with pytest.raises(GenerationBudgetExceeded, match="on_budget_exhausted=train_partial"):
        OnlineBatcher(config, ScriptedGenerator(pattern), batch_size=4, gen_batch_prompts=2).next_batch(0)
    partial = SamplingConfig(
        cache=CacheConfig(max_groups=0), max_generation_calls_per_step=3, on_budget_exhausted="train_partial"
    )
    generator = ScriptedGenerator(pattern)
    with caplog.at_level("WARNING"):
        result = OnlineBatcher(partial, generator, batch_size=4, gen_batch_prompts=2).next_batch(0)
    assert generator.calls == 3 and [g.uid for g in result.batch] == ["u1", "u4"]
    assert result.metrics.budget_exhausted == 1 and result.metrics.batch_fill == 0.5
    assert result.metrics.as_dict()["falcon_sampling/budget_exhausted"] == 1.0
    assert "train_partial" in caplog.text
    # a step that fills within the budget reports 0
    full = OnlineBatcher(partial, ScriptedGenerator([(0.0, 1.0)]), batch_size=4).next_batch(0)
    assert full.metrics.budget_exhausted == 0 and len(full.batch) == 4


def test_duplicate_with_no_signal_leaves_the_batch_empty():
    config = SamplingConfig(strategy="duplicate", cache=CacheConfig(max_groups=0))
    result = OnlineBatcher(config, ScriptedGenerator([(0.0, 0.0)]), batch_size=4).next_batch(0)
    assert result.batch == [] and result.metrics.batch_fill == 0.0


def test_generator_must_stamp_the_policy_version():
    def stale_generator(num_prompts, policy_version):
        return [group(f"s{i}", policy_version - 1) for i in range(num_prompts)]

    with pytest.raises(ValueError, match="policy version"):
        OnlineBatcher(SamplingConfig(), stale_generator, batch_size=2).next_batch(3)


def test_preflight_check_passes():
    from verl_falcon_plugin.preflight.checks.sampling import backfill

    result = backfill()
    assert result.status.value == "PASS", result.detail
