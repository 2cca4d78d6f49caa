"""Shared setup of the verl-path sampler tests: verl's composed config, scripted rewards, trainer builders."""

from __future__ import annotations

import copy

from verl_falcon_plugin.testing.verl_rollout import ScriptedAgentLoop, clear_partitions, run_sync_steps, sync_trainer

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
KWARGS = "trainer.v1.sampler.sampler_kwargs"


def with_overrides(base, extra: list[str]):
    """A copy of the composed config with command-line style ``key=value`` overrides."""
    import yaml
    from omegaconf import OmegaConf, open_dict

    config = copy.deepcopy(base)
    with open_dict(config):
        for override in extra:
            key, _, value = override.partition("=")
            OmegaConf.update(config, key, yaml.safe_load(value), merge=False)
    return config


def scripted_trainer(config, pattern=PATTERN, clear: bool = True):
    """verl's sync trainer over TransferQueue with scripted rollouts; prompt ``k`` gets ``pattern[k]``."""
    if clear:
        clear_partitions()  # each trainer starts from an empty TransferQueue
    loop = ScriptedAgentLoop(lambda index, submit_step: pattern[index % len(pattern)], group_size=G)
    trainer = sync_trainer(config, loop)
    return trainer, trainer.replay_buffer, loop


def run(trainer, buffer, loop, steps=STEPS, **kwargs):
    assert trainer.replay_buffer is buffer and trainer.agent_loop_manager is loop
    return run_sync_steps(trainer, steps, **kwargs)
