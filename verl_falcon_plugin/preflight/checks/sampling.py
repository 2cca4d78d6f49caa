"""Online sampling: the backfill batcher on a synthetic generator keeps its invariants."""

from __future__ import annotations

from verl_falcon_plugin.preflight.registry import CheckResult, register_check

STEPS = 40
BATCH = 32
GROUP = 16


@register_check("sampling.backfill", area="sampling")
def backfill() -> CheckResult:
    """Every batch full, no zero-advantage or repeated or stale group, cache in bounds, fewer calls than plain."""
    import numpy as np

    from verl_falcon_plugin.sampling import CacheConfig, OnlineBatcher, SamplingConfig
    from verl_falcon_plugin.sampling.simulator import DifficultyModel, SyntheticGenerator, mirrored_j_pass_rates

    pass_rates = mirrored_j_pass_rates(2000, DifficultyModel(), np.random.default_rng(0))
    cache = CacheConfig(max_groups=BATCH, max_age_steps=1)
    calls = {}
    violations: list[str] = []
    for label, cache_config in (("plain", CacheConfig(max_groups=0)), ("cache", cache)):
        generator = SyntheticGenerator(pass_rates, group_size=GROUP, drift_per_step=0.01, seed=0)
        batcher = OnlineBatcher(SamplingConfig(cache=cache_config), generator, batch_size=BATCH)
        seen: set[str] = set()
        for version in range(STEPS):
            batch = batcher.next_batch(version).batch
            uids = {g.uid for g in batch}
            if len(batch) != BATCH:
                violations.append(f"{label} step {version}: batch of {len(batch)}")
            if any(not g.has_signal for g in batch):
                violations.append(f"{label} step {version}: zero-advantage group trained")
            if uids & seen or len(uids) != len(batch):
                violations.append(f"{label} step {version}: group trained twice")
            if any(g.age(version) > cache.max_age_steps for g in batch):
                violations.append(f"{label} step {version}: stale group trained")
            if batcher.cache is not None and len(batcher.cache) > cache.max_groups:
                violations.append(f"{label} step {version}: cache over its bound")
            seen |= uids
        calls[label] = generator.calls
    if calls["cache"] >= calls["plain"]:
        violations.append(f"the cache saved no generation calls ({calls['cache']} vs {calls['plain']})")
    detail = f"{STEPS} steps, batch {BATCH}, G={GROUP}: calls plain {calls['plain']}, cache {calls['cache']}"
    if violations:
        return CheckResult.failed(f"{detail}; " + "; ".join(violations[:3]))
    return CheckResult.passed(detail)
