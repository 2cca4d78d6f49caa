"""Compose verl's trainer config with Hydra, as `python -m verl.trainer.main_ppo` does, in-process."""

from __future__ import annotations

from verl_falcon_plugin.requires import require

PPO_CONFIG_MODULE = "verl.trainer.config"
PPO_CONFIG_NAME = "ppo_trainer"


def compose_ppo_config(overrides: list[str]):
    """verl's ``ppo_trainer`` config with ``overrides`` (e.g. ``["+plugin=falcon_h1r"]``), unresolved."""
    hydra = require("hydra", "composing verl's config")
    global_hydra = require("hydra.core.global_hydra", "composing verl's config").GlobalHydra
    global_hydra.instance().clear()
    with hydra.initialize_config_module(config_module=PPO_CONFIG_MODULE, version_base=None):
        return hydra.compose(config_name=PPO_CONFIG_NAME, overrides=overrides)
