"""verl's real v1 sampler/refill path with our sampler plugged in by config, on CPU, over the real TransferQueue.

The trainer side is verl's own code: ``PPOTrainer._build_replay_buffer`` loads the
class from ``+plugin=falcon_h1r``'s ``trainer.v1.sampler.custom_sampler``, and the
refill goes through ``_add_prompts_to_generate`` -> ``_next_train_batch`` ->
``_submit_batch_to_rollout``. Storage is TransferQueue 0.1.11 on a private Ray cluster;
only the rollout engine is scripted (``verl_falcon_plugin.testing.verl_rollout``). The
reference is verl's built-in sync DAPO ``ReplayBuffer`` on the same scripted rewards.
"""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue (verl[verl-core])")

from tests.sampling.verl_path import (
    BATCH,  # noqa: E402
    scripted_trainer,  # noqa: E402
)
from tests.sampling.verl_path import run as _run  # noqa: E402
from tests.sampling.verl_path import with_overrides as _config  # noqa: E402
from verl_falcon_plugin.sampling.verl_sampler import FalconOnlineSampler  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster with TransferQueue's controller and storage actors


def _trainer(verl_v1, config, monkeypatch=None, **kwargs):
    return scripted_trainer(config, **kwargs)


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
    trainer, buffer, loop = _trainer(verl_v1, builtin_config, monkeypatch)
    assert type(buffer) is verl_v1.ReplayBuffer
    theirs = _run(trainer, buffer, loop)

    for a, b in zip(ours, theirs, strict=True):
        assert (a["calls"], a["prompts"]) == (b["calls"], b["prompts"])
        assert len(a["uids"]) == len(b["uids"]) == BATCH
        discarded = b["metrics"].get("training/filter_groups/discarded_surplus_samples", 0)
        assert a["metrics"]["training/falcon_sampling/discarded_surplus"] == discarded
        assert (
            a["metrics"]["training/filter_groups/evicted_samples"]
            == b["metrics"]["training/filter_groups/evicted_samples"]
        )
    assert any(b["metrics"].get("training/filter_groups/discarded_surplus_samples", 0) for b in theirs), (
        "the scenario must produce surplus, or the cache has nothing to save"
    )


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
    trainer, buffer, loop = _trainer(
        verl_v1, _config(plugin_config, [f"{kwargs}.strategy=reject", f"{kwargs}.cache.max_groups=0"]), monkeypatch
    )
    for r in _run(trainer, buffer, loop):
        assert r["calls"] == 1 and r["prompts"] == BATCH, "reject never refills"
        assert len(r["uids"]) == 5 and all(len(set(rw)) > 1 for rw in r["rewards"])
        assert r["metrics"]["training/falcon_sampling/batch_fill"] == 5 / BATCH


def test_bad_settings_fail_with_the_field_named(verl_v1, plugin_config, monkeypatch):
    kwargs = "trainer.v1.sampler.sampler_kwargs"
    with pytest.raises(ValueError, match=r"sampler_kwargs\.cache\.max_age_steps"):
        _trainer(verl_v1, _config(plugin_config, [f"{kwargs}.cache.max_age_steps=-1"]), monkeypatch)
    with pytest.raises(ValueError, match=r"sampler_kwargs\.on_budget_exhausted"):
        _trainer(verl_v1, _config(plugin_config, [f"{kwargs}.on_budget_exhausted=skip"]), monkeypatch)
    with pytest.raises(ValueError, match="trainer_mode=sync"):
        _trainer(verl_v1, _config(plugin_config, ["trainer.v1.trainer_mode=separate_async"]), monkeypatch)


def test_validation_batches_go_through_verls_own_path_unfiltered(verl_v1, plugin_config, transfer_queue):
    _, buffer, _ = _trainer(verl_v1, _config(plugin_config, []))
    keys = [f"v1_{i}_0" for i in range(4)]  # all rewards 1: zero advantage, which validation must keep
    fields = TensorDict({"rm_scores": torch.tensor([[0.0, 1.0]] * 4)}, batch_size=[4])
    transfer_queue.kv_batch_put(keys=keys, partition_id="val", fields=fields, tags=[{"status": "success"}] * 4)
    prompt_tag = {"is_prompt": True, "status": "finished", "global_steps": 0}
    transfer_queue.kv_put(key="v1", partition_id="val", tag=prompt_tag)
    batch, metrics = buffer.sample(global_steps=1, partition_id="val", batch_size=1)
    assert sorted(batch.keys) == [f"v1_{i}_0" for i in range(4)]
    assert not any(k.startswith("training/falcon_sampling") for k in metrics)


def test_backfill_stops_with_a_clear_error_when_no_group_has_signal(verl_v1, plugin_config, monkeypatch):
    from verl_falcon_plugin.sampling import GenerationBudgetExceeded

    kwargs = "trainer.v1.sampler.sampler_kwargs"
    config = _config(plugin_config, [f"{kwargs}.max_generation_calls_per_step=3"])
    trainer, buffer, loop = _trainer(verl_v1, config, monkeypatch, pattern=[(1.0, 1.0, 1.0, 1.0)])
    with pytest.raises(GenerationBudgetExceeded, match="max_generation_calls_per_step"):
        _run(trainer, buffer, loop, steps=1)
    assert loop.prompts <= 3 * BATCH
