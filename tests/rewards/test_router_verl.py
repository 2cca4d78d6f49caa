"""verl integration: the composed `+plugin=falcon_h1r` config, verl's own loader, and its naive reward manager."""

from __future__ import annotations

import asyncio
import inspect
import os

import pytest

verl = pytest.importorskip("verl")

from tests.rewards.tiny_tokenizer import build_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def config():
    from hydra import compose, initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        return compose("ppo_trainer", overrides=["+plugin=falcon_h1r"])


def test_plugin_config_points_verl_at_the_router(config):
    assert config.reward.custom_reward_function.path == "pkg://verl_falcon_plugin.rewards.router"
    assert config.reward.custom_reward_function.name == "compute_score_async"
    # the legacy top-level key stays unset, so verl's migration does not overwrite ours
    assert all(v is None for v in config.custom_reward_function.values())


def test_verls_loader_resolves_and_awaits_the_router(config):
    from verl.experimental.reward_loop.reward_loop import migrate_legacy_reward_impl
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from verl_falcon_plugin.rewards.router import compute_score_async

    config = migrate_legacy_reward_impl(config.copy())
    fn = get_custom_reward_fn(config)
    assert fn.args[0] is compute_score_async
    assert inspect.iscoroutinefunction(fn)  # so verl's managers await it instead of using their small executor
    out = asyncio.run(
        fn(data_source="aime25", solution_str="<think>w</think>\\boxed{5}", ground_truth="5", extra_info={})
    )
    assert out["score"] == 1.0


@pytest.mark.parametrize("special,format_ok", [(False, True), (True, False)])
def test_naive_reward_manager_end_to_end(config, special, format_ok):
    """verl's NaiveRewardManager decodes the response ids (skip_special_tokens=True) and calls our router."""
    import numpy as np
    import torch
    from verl import DataProto
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager
    from verl.trainer.ppo.reward import get_custom_reward_fn

    tokenizer = build_tokenizer(think_tags_special=special)
    response = tokenizer.encode("<think> let me think </think> the answer is \\boxed{5}", add_special_tokens=False)
    prompt = [1, 1]
    data = DataProto.from_dict(
        tensors={
            "prompts": torch.tensor([prompt]),
            "responses": torch.tensor([response]),
            "attention_mask": torch.ones(1, len(prompt) + len(response), dtype=torch.long),
        },
        non_tensors={
            "data_source": np.array(["aime25"], dtype=object),
            "reward_model": np.array([{"ground_truth": "5"}], dtype=object),
            "extra_info": np.array([{"question": "What is 2+3?"}], dtype=object),
        },
    )

    async def run():
        manager = NaiveRewardManager(config, tokenizer, get_custom_reward_fn(config))
        return await manager.run_single(data)

    out = asyncio.run(run())
    info = out["reward_extra_info"]
    assert info["acc"] == 1.0  # the answer is right either way
    assert info["format_ok"] is format_ok  # special think tags are stripped by verl's decode
    assert out["reward_score"] == (1.0 if format_ok else 0.0)
