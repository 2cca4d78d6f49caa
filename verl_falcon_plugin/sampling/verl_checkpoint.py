"""The generation cache in verl's checkpoints: saved with every checkpoint, restored when the run resumes.

The cache is groups kept in TransferQueue, and verl 0.9.1's sync trainer does not checkpoint
TransferQueue (``PPOTrainer._save_checkpoint`` saves it for the async modes only). So:

* **save**: verl calls ``trainer.checkpoint_callback_class`` after each checkpoint, on the driver,
  with the trainer and the ``global_step_N`` folder. :class:`SamplerCheckpointCallback` (set by
  ``+plugin=falcon_h1r``) writes ``falcon_sampler.pt`` there: each cached group's prompt tag, its
  trajectories (keys, tags, every field TransferQueue holds for them) and the sampler's random state.
* **restore**: verl calls nothing on a sampler when it resumes. The sampler restores on its first
  training ``sample`` of a resumed run (global step ``s > 1``: verl resumed from step ``s - 1``) from the
  folder verl resumed from: ``sampler_kwargs.checkpoint`` holds verl's ``trainer.default_local_dir``,
  ``resume_mode`` and ``resume_from_path`` (``+plugin=falcon_h1r`` fills them by interpolation). A
  resumed run without the file starts with an empty cache and says so in a WARNING.

The file holds what TransferQueue holds for the cached groups (token ids, masks, rewards, log-probs):
up to ``cache.max_groups`` x G trajectories, e.g. about 1 GB for 128 groups of 16 rollouts of 48K tokens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from verl_falcon_plugin.requires import require
from verl_falcon_plugin.sampling.config import CONFIG_PREFIX, SamplingConfigError

logger = logging.getLogger(__name__)

_torch = require("torch", "the online-sampling verl sampler")
_tq = require("transfer_queue", "the online-sampling verl sampler")
_checkpoint_callback = require("verl.trainer.ppo.checkpoint_callback", "the online-sampling verl sampler")

STATE_FILE = "falcon_sampler.pt"
STATE_VERSION = 1
RESUME_MODES = ("auto", "resume_path", "disable")


@dataclass(frozen=True)
class CheckpointLocation:
    """Where verl resumes from: ``trainer.default_local_dir`` / ``resume_mode`` / ``resume_from_path``."""

    default_local_dir: str | None = None
    resume_mode: str = "auto"
    resume_from_path: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> CheckpointLocation | None:
        if values is None:
            return None
        values = dict(values)
        known = {"default_local_dir", "resume_mode", "resume_from_path"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SamplingConfigError(
                f"{CONFIG_PREFIX}.checkpoint.{unknown[0]}: unknown key; known keys are {sorted(known)}"
            )
        location = cls(**values)
        if location.resume_mode not in RESUME_MODES:
            raise SamplingConfigError(
                f"{CONFIG_PREFIX}.checkpoint.resume_mode: {location.resume_mode!r} is not one of {RESUME_MODES} "
                "(it mirrors trainer.resume_mode)"
            )
        return location

    def resumed_folder(self, resumed_step: int) -> str | None:
        """The ``global_step_N`` folder verl's ``_load_checkpoint`` resumed from, as an absolute path."""
        if self.resume_mode == "disable":
            return None
        if self.resume_mode == "resume_path":
            folder = self.resume_from_path
        else:
            folder = os.path.join(self.default_local_dir or "", f"global_step_{resumed_step}")
        return os.path.abspath(folder) if folder else None


def save_cached_groups(sampler: Any, checkpoint_dir: str, partition_id: str = "train") -> int:
    """Write every terminal group TransferQueue holds for ``partition_id`` (the cache) to ``checkpoint_dir``.

    verl saves after the step's batch was selected (whose prompt keys are already cleared) and
    before its trajectories are cleared, so the prompt keys left are exactly the cache."""
    sampler._sync_metadata_from_transfer_queue()
    cached = sorted(sampler.finished_keys[partition_id] | sampler.failure_keys[partition_id])
    prompt_tags = (_tq.kv_list(partition_id) or {}).get(partition_id, {})
    trajectories = sampler.partitions[partition_id]
    keys = sorted(key for key in trajectories if key.split("_")[0] in set(cached))
    state = {
        "version": STATE_VERSION,
        "partition_id": partition_id,
        "prompt_keys": cached,
        "prompt_tags": [prompt_tags[uid] for uid in cached],
        "keys": keys,
        "tags": [trajectories[key] for key in keys],
        "fields": _tq.kv_batch_get(keys=keys, partition_id=partition_id) if keys else None,
        "rng": sampler.rng.bit_generator.state,
    }
    os.makedirs(checkpoint_dir, exist_ok=True)
    path = os.path.join(checkpoint_dir, STATE_FILE)
    partial = f"{path}.partial"
    _torch.save(state, partial)
    os.replace(partial, path)  # never a half-written state file under the final name
    logger.info("falcon_h1r: saved %d cached groups (%d trajectories) to %s", len(cached), len(keys), path)
    return len(cached)


def restore_cached_groups(sampler: Any, folder: str) -> int | None:
    """Put the groups saved in ``folder`` back into TransferQueue; ``None`` when there is no state file."""
    path = os.path.join(folder, STATE_FILE)
    if not os.path.exists(path):
        return None
    state = _torch.load(path, weights_only=False)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path}: sampler state version {state.get('version')} is not {STATE_VERSION}")
    partition_id = state["partition_id"]
    if state["keys"]:
        _tq.kv_batch_put(keys=state["keys"], partition_id=partition_id, fields=state["fields"], tags=state["tags"])
    if state["prompt_keys"]:
        _tq.kv_batch_put(keys=state["prompt_keys"], partition_id=partition_id, tags=state["prompt_tags"])
    sampler.rng.bit_generator.state = state["rng"]
    logger.info("falcon_h1r: restored %d cached groups from %s", len(state["prompt_keys"]), path)
    return len(state["prompt_keys"])


def restore_on_resume(sampler: Any, location: CheckpointLocation | None, global_steps: int) -> int:
    """Restore the cache saved with the checkpoint a run resumed from; 0 on a fresh run. Returns the groups."""
    if global_steps <= 1:
        return 0
    folder = location.resumed_folder(global_steps - 1) if location is not None else None
    restored = restore_cached_groups(sampler, folder) if folder else None
    if restored is None:
        where = f"{folder}/{STATE_FILE} does not exist" if folder else f"{CONFIG_PREFIX}.checkpoint is not set"
        logger.warning(
            "falcon_h1r: resumed at global step %d but the generation cache cannot be restored (%s): it starts "
            "empty. +plugin=falcon_h1r saves it with trainer.checkpoint_callback_class=%s.%s",
            global_steps, where, __name__, SamplerCheckpointCallback.__name__,
        )  # fmt: skip
        return 0
    return restored


class SamplerCheckpointCallback(_checkpoint_callback.CheckpointCallback):
    """verl's driver-side checkpoint hook: saves the online sampler's generation cache with each checkpoint."""

    def on_save(self, trainer: Any, global_step: int, checkpoint_dir: str, async_save: bool = False, **kwargs) -> None:
        sampler = getattr(trainer, "replay_buffer", None)
        save_cache = getattr(sampler, "save_cache", None)
        if save_cache is None:
            logger.info("falcon_h1r: %s has no generation cache to save", type(sampler).__name__)
            return
        save_cache(checkpoint_dir)
