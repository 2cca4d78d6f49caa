"""Property tests of the online batcher over random reward patterns (hypothesis)."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sampling.scripted import ScriptedGenerator
from verl_falcon_plugin.sampling import CacheConfig, OnlineBatcher, SamplingConfig

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

group_rewards = st.lists(st.integers(0, 1), min_size=4, max_size=4).map(lambda r: tuple(float(x) for x in r))
patterns = st.lists(group_rewards, min_size=1, max_size=12)
supplying_patterns = patterns.filter(lambda p: any(len(set(r)) > 1 for r in p))
caches = st.builds(
    CacheConfig,
    max_groups=st.integers(0, 12),
    max_age_steps=st.integers(0, 3),
    refresh_every_steps=st.one_of(st.none(), st.integers(1, 4)),
)
shapes = st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 6))  # target, gen batch, steps


def _run(config: SamplingConfig, pattern, target: int, gen_batch: int, steps: int):
    generator = ScriptedGenerator(pattern)
    batcher = OnlineBatcher(config, generator, batch_size=target, gen_batch_prompts=gen_batch)
    results, caches_after = [], []
    for version in range(steps):
        results.append(batcher.next_batch(version))
        caches_after.append(list(batcher.cache) if batcher.cache is not None else [])
    return generator, caches_after, results


@PROPERTY_SETTINGS
@given(pattern=supplying_patterns, cache=caches, shape=shapes)
def test_backfill_invariants(pattern, cache, shape):
    target, gen_batch, steps = shape
    config = SamplingConfig(strategy="backfill", cache=cache, max_generation_calls_per_step=10_000)
    generator, caches_after, results = _run(config, pattern, target, gen_batch, steps)

    trained = [g for r in results for g in r.batch]
    assert all(len(r.batch) == target for r in results), "backfill must always fill the batch exactly"
    assert all(g.has_signal for g in trained), "a zero-advantage group reached a batch"
    assert len({g.uid for g in trained}) == len(trained), "a group was trained on twice"
    for version, (r, cached) in enumerate(zip(results, caches_after, strict=True)):
        assert len(cached) <= cache.max_groups
        assert r.metrics.cache_size == len(cached)
        assert all(g.age(version) <= cache.max_age_steps for g in r.batch), "a stale group was trained on"
        assert all(g.has_signal for g in cached)

    # conservation: every generated group with signal is trained, still cached, evicted or discarded
    valid = sum(g.has_signal for g in generator.log)
    left = len(caches_after[-1])
    evicted = sum(
        r.metrics.cache_evicted_age
        + r.metrics.cache_evicted_size
        + r.metrics.cache_evicted_refresh
        + r.metrics.discarded_surplus
        for r in results
    )
    assert valid == len(trained) + left + evicted
    assert sum(r.metrics.generation_calls for r in results) == generator.calls
    assert sum(r.metrics.zero_advantage_groups for r in results) == sum(not g.has_signal for g in generator.log)


@PROPERTY_SETTINGS
@given(pattern=supplying_patterns, shape=shapes)
def test_plain_backfill_makes_the_minimal_number_of_calls(pattern, shape):
    """Without a cache, each step calls until its own calls hold ``target`` groups with signal, then stops."""
    target, gen_batch, steps = shape
    config = SamplingConfig(cache=CacheConfig(max_groups=0), max_generation_calls_per_step=10_000)
    generator, _, results = _run(config, pattern, target, gen_batch, steps)

    signal = [len(set(r)) > 1 for r in pattern]
    produced = 0
    for r in results:
        expected_calls, found = 0, 0
        while found < target:
            found += sum(signal[(produced + i) % len(pattern)] for i in range(gen_batch))
            produced += gen_batch
            expected_calls += 1
        assert r.metrics.generation_calls == expected_calls
        assert r.metrics.discarded_surplus == found - target


@PROPERTY_SETTINGS
@given(pattern=supplying_patterns, shape=shapes)
def test_cache_never_makes_more_calls_than_plain_backfill(pattern, shape):
    target, gen_batch, steps = shape
    plain = SamplingConfig(cache=CacheConfig(max_groups=0), max_generation_calls_per_step=10_000)
    cached = SamplingConfig(cache=CacheConfig(max_groups=64, max_age_steps=100), max_generation_calls_per_step=10_000)
    plain_gen, _, _ = _run(plain, pattern, target, gen_batch, steps)
    cached_gen, _, _ = _run(cached, pattern, target, gen_batch, steps)
    assert cached_gen.calls <= plain_gen.calls


@PROPERTY_SETTINGS
@given(pattern=patterns, shape=shapes)
def test_reject_shrinks_the_batch_to_the_groups_with_signal(pattern, shape):
    target, gen_batch, steps = shape
    config = SamplingConfig(strategy="reject", cache=CacheConfig(max_groups=0))
    generator, _, results = _run(config, pattern, target, gen_batch, steps)

    for version, r in enumerate(results):
        generated = [g for g in generator.log if g.policy_version == version]
        assert len(generated) == target, "reject generates exactly one batch of prompts per step"
        assert [g.uid for g in r.batch] == [g.uid for g in generated if g.has_signal]
        assert len(r.batch) <= target
    trained = [g for r in results for g in r.batch]
    assert len({g.uid for g in trained}) == len(trained)


@PROPERTY_SETTINGS
@given(pattern=patterns, shape=shapes, seed=st.integers(0, 2**16))
def test_duplicate_restores_the_size_from_groups_with_signal(pattern, shape, seed):
    target, gen_batch, steps = shape
    config = SamplingConfig(strategy="duplicate", cache=CacheConfig(max_groups=0), seed=seed)
    generator, _, results = _run(config, pattern, target, gen_batch, steps)

    seen: set[str] = set()
    for version, r in enumerate(results):
        valid = [g for g in generator.log if g.policy_version == version and g.has_signal]
        if not valid:
            assert r.batch == []
            continue
        assert len(r.batch) == target
        assert all(g.has_signal for g in r.batch)
        assert r.batch[: len(valid)] == valid, "every group with signal is used once before any copy"
        copies = Counter(g.uid for g in r.batch)
        assert set(copies) == {g.uid for g in valid}
        assert max(copies.values()) - min(copies.values()) <= 1, "copies must be spread evenly"
        assert not (set(copies) & seen), "a group was reused in a later step"
        seen |= set(copies)


@PROPERTY_SETTINGS
@given(
    pattern=supplying_patterns,
    cache=caches,
    shape=shapes,
    seed=st.integers(0, 2**16),
    strategy=st.sampled_from(["backfill", "reject", "duplicate"]),
)
def test_deterministic_under_a_seed(pattern, cache, shape, seed, strategy):
    target, gen_batch, steps = shape
    if strategy != "backfill":
        cache = CacheConfig(max_groups=0)
    config = SamplingConfig(strategy=strategy, cache=cache, seed=seed, max_generation_calls_per_step=10_000)
    first = _run(config, pattern, target, gen_batch, steps)[2]
    second = _run(config, pattern, target, gen_batch, steps)[2]
    assert [[g.uid for g in r.batch] for r in first] == [[g.uid for g in r.batch] for r in second]
    assert [r.metrics for r in first] == [r.metrics for r in second]
