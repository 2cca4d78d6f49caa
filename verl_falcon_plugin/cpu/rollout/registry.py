"""Register the HF CPU rollout in verl's two rollout registries (rollout name ``hf``, mode ``async``)."""

from __future__ import annotations

import importlib

NAME = "hf"
ADAPTER = "verl_falcon_plugin.cpu.rollout.adapter.HFServerAdapter"


def _load_replica() -> type:
    from verl_falcon_plugin.cpu.rollout.replica import HFRolloutReplica

    return HFRolloutReplica


def register_adapter() -> list[str]:
    """``_ROLLOUT_REGISTRY[("hf", "async")]`` (``verl/workers/rollout/base.py:89``): the trainer-side adapter."""
    base = importlib.import_module("verl.workers.rollout.base")
    base._ROLLOUT_REGISTRY[(NAME, "async")] = ADAPTER
    return [f"verl rollout ({NAME!r}, 'async') -> {ADAPTER} (CPU smoke runs)"]


def register_replica() -> list[str]:
    """``RolloutReplicaRegistry.register("hf", ...)`` (``verl/workers/rollout/replica.py:317``)."""
    replica = importlib.import_module("verl.workers.rollout.replica")
    replica.RolloutReplicaRegistry.register(NAME, _load_replica)
    return [f"verl RolloutReplicaRegistry[{NAME!r}] -> HFRolloutReplica (CPU smoke runs)"]
