"""The verl sampler's train_partial budget policy, the paper's ``duplicate`` strategy and the cache across a
checkpoint resume, through verl's real sync trainer code over the real TransferQueue (rollouts scripted).

References we did not write: verl's own GRPO advantage (``compute_grpo_outcome_advantage``), TransferQueue's
refusal of repeated keys, and verl's ``_save_checkpoint`` / ``_load_checkpoint`` with an uninterrupted run.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

pytest.importorskip("transfer_queue", reason="verl's v1 trainer needs TransferQueue (verl[verl-core])")

from tests.sampling.verl_path import BATCH, KWARGS, G, run, scripted_trainer, with_overrides  # noqa: E402
from verl_falcon_plugin.sampling.verl_checkpoint import STATE_FILE  # noqa: E402
from verl_falcon_plugin.testing.verl_rollout import clear_partitions, counting_uids  # noqa: E402

pytestmark = pytest.mark.slow  # a Ray cluster with TransferQueue's controller and storage actors

METRIC = "training/falcon_sampling"
# 1 of 8 groups has signal: a batch of 8 cannot fill within 2 generation calls
SPARSE = [(1.0,) * G] * 7 + [(1.0, 0.0, 0.0, 0.0)]


def test_train_partial_trains_on_what_was_collected_with_a_warning_and_a_metric(verl_v1, plugin_config, caplog):
    config = with_overrides(
        plugin_config, [f"{KWARGS}.max_generation_calls_per_step=2", f"{KWARGS}.on_budget_exhausted=train_partial"]
    )
    trainer, buffer, loop = scripted_trainer(config, pattern=SPARSE)
    with caplog.at_level(logging.WARNING):
        (step,) = run(trainer, buffer, loop, steps=1)
    # the trainer's batch (8 prompts) + one refill of 8 (the budget): 2 groups with signal, drained and trained
    assert step["prompts"] == 2 * BATCH and len(step["uids"]) == 2
    assert all(len(set(rewards)) > 1 for rewards in step["rewards"])
    assert step["metrics"][f"{METRIC}/budget_exhausted"] == 1.0
    assert step["metrics"][f"{METRIC}/batch_fill"] == 2 / BATCH
    assert "on_budget_exhausted=train_partial" in caplog.text
    # the default policy stops the run at the same point (tests/sampling/test_verl_sampler.py)


def _grpo_advantages(transfer_queue, batch, group_by) -> dict[str, float]:
    """verl's GRPO outcome advantage of each trajectory key, rows grouped by ``group_by(key, uid_field)``."""
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    data = transfer_queue.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["uid", "rm_scores"])
    scores = torch.stack(data["rm_scores"].unbind())
    index = [group_by(key, str(uid)) for key, uid in zip(batch.keys, data["uid"], strict=True)]
    advantages, _ = compute_grpo_outcome_advantage(scores, torch.ones_like(scores), index)
    return {key: float(row[-1]) for key, row in zip(batch.keys, advantages, strict=True)}


def test_duplicate_fills_the_batch_with_copies_under_fresh_keys(verl_v1, plugin_config, transfer_queue):
    config = with_overrides(plugin_config, [f"{KWARGS}.strategy=duplicate", f"{KWARGS}.cache.max_groups=0"])
    trainer, buffer, loop = scripted_trainer(config)
    checked = []

    def inspect(trainer, batch):
        assert len(batch.keys) == len(set(batch.keys)) == BATCH * G  # TransferQueue refuses repeated keys
        ours = _grpo_advantages(transfer_queue, batch, lambda key, uid: uid)
        for key, advantage in ours.items():
            if "-copy" in key:  # a copy has exactly the advantages of its original
                original = key.split("-copy")[0] + "_" + key.split("_", 1)[1]
                assert advantage == pytest.approx(ours[original], abs=1e-6)
                checked.append(key)
        # negative control: copies stored under the original's uid field would join its group (2G rows),
        # and verl's unbiased std would give them other advantages
        shared = _grpo_advantages(transfer_queue, batch, lambda key, uid: key.split("-copy")[0].split("_")[0])
        assert any(abs(shared[key] - ours[key]) > 1e-3 for key in ours if "-copy" in key)

    results = run(trainer, buffer, loop, steps=3, inspect=inspect)
    for step in results:
        assert step["calls"] == 1 and step["prompts"] == BATCH, "duplicate never refills"
        originals = [u for u in step["uids"] if "-copy" not in u]
        copies = [u for u in step["uids"] if "-copy" in u]
        assert len(originals) == 5 and len(copies) == 3 and set(u.split("-copy")[0] for u in copies) <= set(originals)
        by_uid = dict(zip(step["uids"], step["rewards"], strict=True))
        assert all(by_uid[c] == by_uid[c.split("-copy")[0]] for c in copies)
        assert all(len(set(rewards)) > 1 for rewards in step["rewards"])
        assert step["metrics"][f"{METRIC}/duplicated_groups"] == 3.0
        assert step["metrics"][f"{METRIC}/batch_fill"] == 1.0
    assert checked
    items = transfer_queue.kv_list("train").get("train", {})
    assert not [key for key in items if "-copy" in key], "the trainer's end-of-step clear left copies behind"


def _resumable_config(plugin_config, directory):
    return with_overrides(
        plugin_config,
        [f"trainer.default_local_dir={directory}", "trainer.resume_mode=auto", f"{KWARGS}.cache.max_age_steps=2"],
    )


def _summary(steps):
    keys = ("prompts_trained", "rewards", "ages", "calls", "prompts", "cached_after")  # restore comes in sample()
    return [{k: step[k] for k in keys} for step in steps]


@pytest.fixture
def reproducible_uids():
    with counting_uids():
        yield


def test_the_cache_survives_verls_checkpoint_and_resume(verl_v1, plugin_config, tmp_path, caplog, reproducible_uids):
    total, stop = 6, 3
    reference = _summary(run(*scripted_trainer(_resumable_config(plugin_config, tmp_path / "full")), steps=total))

    trainer, buffer, loop = scripted_trainer(_resumable_config(plugin_config, tmp_path / "run"))
    first = run(trainer, buffer, loop, steps=stop)
    trainer._save_checkpoint()  # verl's own: actor, data.pt, then trainer.checkpoint_callback_class
    assert os.path.exists(tmp_path / "run" / f"global_step_{stop}" / STATE_FILE)
    assert first[-1]["cached_after"] > 0, "the scenario must leave groups in the cache"

    def resume():
        clear_partitions()  # a new process starts with an empty TransferQueue
        trainer, buffer, loop = scripted_trainer(_resumable_config(plugin_config, tmp_path / "run"), clear=False)
        trainer._load_checkpoint()  # verl's own: global step and dataloader position from the folder
        assert trainer.global_steps == stop
        return run(trainer, buffer, loop, steps=total - stop, first_step=stop + 1)

    resumed = resume()
    assert resumed[0]["metrics"][f"{METRIC}/cache_restored"] == first[-1]["cached_after"]
    assert _summary(first) + _summary(resumed) == reference

    # without the saved cache the resumed run generates more and trains on other groups, and says so
    os.remove(tmp_path / "run" / f"global_step_{stop}" / STATE_FILE)
    with caplog.at_level(logging.WARNING):
        cold = resume()
    assert "cannot be restored" in caplog.text
    assert _summary(first) + _summary(cold) != reference
    assert cold[0]["metrics"][f"{METRIC}/cache_restored"] == 0.0
