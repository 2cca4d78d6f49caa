"""verl's real v1 sampler/refill path with our sampler plugged in by config, on CPU.

The trainer side is verl's own code: ``PPOTrainer._build_replay_buffer`` loads the
class from ``+plugin=falcon_h1r``'s ``trainer.v1.sampler.custom_sampler``, and the
refill goes through ``_add_prompts_to_generate`` -> ``_next_train_batch`` ->
``_submit_batch_to_rollout``. Only TransferQueue's storage and the rollout
engine are in-memory fakes (``verl_falcon_plugin.sampling.fakes``). The reference is verl's built-in
sync DAPO ``ReplayBuffer`` on the same scripted rewards.
"""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue (verl[verl-core])")

from verl_falcon_plugin.plugin_config import compose_ppo_config  # noqa: E402
from verl_falcon_plugin.sampling.fakes import (  # noqa: E402
    FakeAgentLoop,
    FakeTransferQueue,
    run_sync_steps,
    sync_trainer,
)
from verl_falcon_plugin.sampling.verl_sampler import FalconOnlineSampler  # noqa: E402

BATCH = 8
G = 4
STEPS = 6
# 5 of 8 groups have signal: one trainer batch never fills a step, so every step refills
PATTERN = [
    (0, 0, 0, 0),
    (1, 0, 1, 0),
    (1, 1, 1, 1),
    (0, 1, 0, 0),
    (1, 1, 0, 1),
    (0, 0, 0, 0),
    (0, 0, 1, 1),
    (1, 0, 0, 0),
]
PATTERN = [tuple(float(r) for r in g) for g in PATTERN]


@pytest.fixture(scope="module")
def verl_v1():
    import verl.trainer.ppo.v1.trainer_base as trainer_base

    return trainer_base


@pytest.fixture(scope="module")
def plugin_config():
    """verl's config composed once with ``+plugin=falcon_h1r``, as ``main_ppo`` builds it."""
    return compose_ppo_config(
        ["+plugin=falcon_h1r", f"data.train_batch_size={BATCH}", f"actor_rollout_ref.rollout.n={G}"]
    )


def _config(base, extra: list[str]):
    """A copy of the composed config with command-line style ``key=value`` overrides."""
    import yaml
    from omegaconf import OmegaConf, open_dict

    config = copy.deepcopy(base)
    with open_dict(config):
        for override in extra:
            key, _, value = override.partition("=")
            OmegaConf.update(config, key, yaml.safe_load(value), merge=False)
    return config


def _trainer(verl_v1, config, monkeypatch, pattern=PATTERN):
    """verl's sync trainer with fake storage and rollouts; the k-th prompt generated gets ``pattern[k]``."""
    import transfer_queue

    store = FakeTransferQueue()
    for name in FakeTransferQueue.API:
        monkeypatch.setattr(transfer_queue, name, getattr(store, name))
    loop = FakeAgentLoop(store, lambda index, tag: pattern[index % len(pattern)])
    trainer = sync_trainer(config, loop)
    return trainer, trainer.replay_buffer, store


def _run(trainer, buffer, store, steps=STEPS):
    assert trainer.replay_buffer is buffer and trainer.agent_loop_manager.store is store
    return run_sync_steps(trainer, steps)


def test_plugin_config_makes_verl_load_our_sampler(verl_v1, plugin_config, monkeypatch):
    trainer, buffer, _ = _trainer(verl_v1, _config(plugin_config, []), monkeypatch)
    assert type(buffer) is FalconOnlineSampler
    assert buffer.settings.strategy == "backfill" and buffer.settings.cache.max_groups == 128
    assert trainer.config.data.gen_batch_size == 1


def test_without_cache_it_reproduces_verls_builtin_dapo_path(verl_v1, plugin_config, monkeypatch):
    """Cache off == verl's own sync DAPO ReplayBuffer: same generation, same batches' rewards, same discards."""
    ours = _run(
        *_trainer(
            verl_v1, _config(plugin_config, ["trainer.v1.sampler.sampler_kwargs.cache.max_groups=0"]), monkeypatch
        )
    )
    builtin_config = _config(
        plugin_config,
        [
            "trainer.v1.sampler.custom_sampler.path=null",
            "trainer.v1.sampler.custom_sampler.name=null",
            "algorithm.filter_groups.enable=true",
            "algorithm.filter_groups.metric=reward",
        ],
    )
    trainer, buffer, store = _trainer(verl_v1, builtin_config, monkeypatch)
    assert type(buffer) is verl_v1.ReplayBuffer
    theirs = _run(trainer, buffer, store)

    for a, b in zip(ours, theirs, strict=True):
        assert (a["calls"], a["prompts"]) == (b["calls"], b["prompts"])
        assert len(a["uids"]) == len(b["uids"]) == BATCH
        discarded = b["metrics"].get("training/filter_groups/discarded_surplus_samples", 0)
        assert a["metrics"]["training/falcon_sampling/discarded_surplus"] == discarded
        assert (
            a["metrics"]["training/filter_groups/evicted_samples"]
            == b["metrics"]["training/filter_groups/evicted_samples"]
        )
    assert any(
        b["metrics"].get("training/filter_groups/discarded_surplus_samples", 0) for b in theirs
    ), "the scenario must produce surplus, or the cache has nothing to save"


@pytest.mark.parametrize("max_groups,max_age", [(128, 1), (3, 1), (128, 0), (128, 3)])
def test_backfill_with_cache_invariants_and_fewer_calls(verl_v1, plugin_config, monkeypatch, max_groups, max_age):
    kwargs = "trainer.v1.sampler.sampler_kwargs.cache"
    ours = _run(
        *_trainer(
            verl_v1,
            _config(plugin_config, [f"{kwargs}.max_groups={max_groups}", f"{kwargs}.max_age_steps={max_age}"]),
            monkeypatch,
        )
    )
    plain = _run(*_trainer(verl_v1, _config(plugin_config, [f"{kwargs}.max_groups=0"]), monkeypatch))

    seen: set[str] = set()
    for r in ours:
        assert len(r["uids"]) == BATCH, "backfill must fill the batch exactly"
        assert all(len(set(rw)) > 1 for rw in r["rewards"]), "a zero-advantage group reached the batch"
        assert not (set(r["uids"]) & seen), "a group was trained on twice"
        seen |= set(r["uids"])
        assert r["cached_after"] <= max_groups, "the cache exceeded its bound"
        assert max(r["ages"]) <= max_age, "a group older than the staleness limit was trained on"
        assert r["metrics"]["training/falcon_sampling/mean_age"] == sum(r["ages"]) / BATCH
    ours_prompts = sum(r["prompts"] for r in ours)
    plain_prompts = sum(r["prompts"] for r in plain)
    if max_age == 0:
        assert ours_prompts == plain_prompts, "max_age_steps=0 forbids reuse: it must equal plain backfill"
    else:
        assert ours_prompts < plain_prompts, "the cache must save generation"
        assert sum(r["metrics"]["training/falcon_sampling/cache_hits"] for r in ours) > 0


def test_reject_shrinks_the_batch_without_refills(verl_v1, plugin_config, monkeypatch):
    kwargs = "trainer.v1.sampler.sampler_kwargs"
    trainer, buffer, store = _trainer(
        verl_v1, _config(plugin_config, [f"{kwargs}.strategy=reject", f"{kwargs}.cache.max_groups=0"]), monkeypatch
    )
    for r in _run(trainer, buffer, store):
        assert r["calls"] == 1 and r["prompts"] == BATCH, "reject never refills"
        assert len(r["uids"]) == 5 and all(len(set(rw)) > 1 for rw in r["rewards"])
        assert r["metrics"]["training/falcon_sampling/batch_fill"] == 5 / BATCH


def test_bad_settings_fail_with_the_field_named(verl_v1, plugin_config, monkeypatch):
    kwargs = "trainer.v1.sampler.sampler_kwargs"
    with pytest.raises(ValueError, match=r"sampler_kwargs\.cache\.max_age_steps"):
        _trainer(verl_v1, _config(plugin_config, [f"{kwargs}.cache.max_age_steps=-1"]), monkeypatch)
    with pytest.raises(NotImplementedError, match="duplicate"):
        _trainer(
            verl_v1,
            _config(plugin_config, [f"{kwargs}.strategy=duplicate", f"{kwargs}.cache.max_groups=0"]),
            monkeypatch,
        )
    with pytest.raises(ValueError, match="trainer_mode=sync"):
        _trainer(verl_v1, _config(plugin_config, ["trainer.v1.trainer_mode=separate_async"]), monkeypatch)


def test_validation_batches_go_through_verls_own_path_unfiltered(verl_v1, plugin_config, monkeypatch):
    _, buffer, store = _trainer(verl_v1, _config(plugin_config, []), monkeypatch)
    store.tags["val"]["v1"] = {"is_prompt": True, "status": "finished", "global_steps": 0}
    for i in range(4):  # all rewards 1: zero advantage, which validation must keep
        store.tags["val"][f"v1_{i}_0"] = {"status": "finished", "seq_len": 8}
        store.values["val"][f"v1_{i}_0"] = {"rm_scores": torch.tensor([0.0, 1.0])}
    batch, metrics = buffer.sample(global_steps=1, partition_id="val", batch_size=1)
    assert sorted(batch.keys) == [f"v1_{i}_0" for i in range(4)]
    assert not any(k.startswith("training/falcon_sampling") for k in metrics)


def test_backfill_stops_with_a_clear_error_when_no_group_has_signal(verl_v1, plugin_config, monkeypatch):
    from verl_falcon_plugin.sampling import GenerationBudgetExceeded

    kwargs = "trainer.v1.sampler.sampler_kwargs"
    config = _config(plugin_config, [f"{kwargs}.max_generation_calls_per_step=3"])
    trainer, buffer, store = _trainer(verl_v1, config, monkeypatch, pattern=[(1.0, 1.0, 1.0, 1.0)])
    with pytest.raises(GenerationBudgetExceeded, match="max_generation_calls_per_step"):
        _run(trainer, buffer, store, steps=1)
    assert trainer.agent_loop_manager.prompts <= 3 * BATCH
