"""verl's v1 sync sampling path on CPU: the real TransferQueue, verl's real trainer code, a scripted rollout engine.

For the sampler tests and ``benchmarks/sampling_verl_path.py``. Storage is TransferQueue itself
(:func:`transfer_queue_session` starts it on a private local Ray cluster); the code that runs
is verl's (``ReplayBuffer``, ``PPOTrainer._build_replay_buffer``, ``prepare_step``,
``_add_prompts_to_generate`` -> ``_next_train_batch`` -> ``_submit_batch_to_rollout``,
``_save_checkpoint`` / ``_load_checkpoint``) and ours. Only the rollout engine is scripted:
:class:`ScriptedAgentLoop` writes each group's trajectories the way verl's ``AgentLoopWorkerTQ`` does
(keys ``{uid}_{session}_0``, the same tags, ``uid``, ``raw_prompt`` and ``rm_scores`` fields), and its rollouts finish
at the next ``kv_list`` after submission, which exercises verl's in-flight accounting and draining.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import types
import uuid
from collections.abc import Callable, Iterator

import numpy as np

from verl_falcon_plugin.requires import require

#: ``rewards(prompt_index, submit_step)`` -> the G rewards of the prompt numbered ``prompt_index`` by
#: :class:`PromptLoader` (0, 1, ...; stable across a checkpoint resume)
RewardSource = Callable[[int, int], tuple[float, ...]]

RESPONSE_LENGTH = 4
TRAIN = "train"


@contextlib.contextmanager
def transfer_queue_session() -> Iterator[object]:
    """TransferQueue (controller + one storage unit) on a private local Ray cluster, shut down on exit.

    One storage unit: TransferQueue's default of several hangs on a 2-core machine."""
    ray = require("ray", "TransferQueue")
    omegaconf = require("omegaconf", "TransferQueue")
    tq = require("transfer_queue", "verl's v1 trainer")
    temp_dir = tempfile.mkdtemp(prefix="tq-", dir="/tmp")  # short: Ray's socket paths have a length limit
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp_dir)
    try:
        tq.init(omegaconf.OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        try:
            yield tq
        finally:
            tq.close()
    finally:
        ray.shutdown()


_UID_COUNTER = itertools.count(1)


@contextlib.contextmanager
def counting_uids() -> Iterator[None]:
    """verl names prompts with ``uuid.uuid4()``; here with increasing UUIDs (process-wide, never reused), so
    that two runs order their groups alike and can be compared step by step."""
    trainer_base = require("verl.trainer.ppo.v1.trainer_base", "verl's v1 trainer")
    real = trainer_base.uuid
    trainer_base.uuid = types.SimpleNamespace(uuid4=lambda: uuid.UUID(int=next(_UID_COUNTER)))
    try:
        yield
    finally:
        trainer_base.uuid = real


def clear_partitions() -> None:
    """Remove every key from every partition (between tests sharing one TransferQueue)."""
    tq = require("transfer_queue", "verl's v1 trainer")
    for partition, items in (tq.kv_list() or {}).items():
        if items:
            tq.kv_clear(keys=list(items), partition_id=partition)


def prompt_tags(partition_id: str = TRAIN) -> dict[str, dict]:
    """The prompt groups TransferQueue holds (verl's ``is_prompt`` keys) and their tags."""
    tq = require("transfer_queue", "verl's v1 trainer")
    items = (tq.kv_list(partition_id) or {}).get(partition_id, {})
    return {key: tag for key, tag in items.items() if tag.get("is_prompt")}


class ScriptedAgentLoop:
    """``generate_sequences(batch)`` as verl's ``AgentLoopManagerTQ``: G rollouts per prompt, rewards from
    ``rewards``, written to TransferQueue when the next poll (``kv_list``) comes; counts calls."""

    def __init__(self, rewards: RewardSource, group_size: int) -> None:
        self.rewards = rewards
        self.group_size = group_size
        self.calls = 0
        self.prompts = 0
        self.call_sizes: list[int] = []
        self._running: list[tuple[str, int, str, tuple[float, ...]]] = []

    def generate_sequences(self, batch) -> None:
        tq = require("transfer_queue", "verl's v1 trainer")
        uids = [str(uid) for uid in batch["uid"]]
        submit_step = int(batch["global_steps"])
        self.call_sizes.append(len(uids))
        for uid, prompt in zip(uids, batch["raw_prompt"], strict=True):
            prompt = str(prompt)
            rewards = tuple(float(r) for r in self.rewards(PromptLoader.index_of(prompt), submit_step))
            if len(rewards) != self.group_size:
                raise ValueError(f"the reward source gave {len(rewards)} rewards for G={self.group_size}")
            self._running.append((uid, submit_step, prompt, rewards))
            self.prompts += 1
        tq.kv_batch_put(keys=uids, partition_id=TRAIN, tags=[{"status": "running"} for _ in uids])
        self.calls += 1

    def finish_running(self) -> None:
        """Write every running group's trajectories, then mark its prompt finished (verl's order)."""
        if not self._running:
            return
        tq = require("transfer_queue", "verl's v1 trainer")
        tensordict = require("tensordict", "verl's v1 trainer")
        torch = require("torch", "verl's v1 trainer")
        running, self._running = self._running, []
        keys, tags, uids, prompts, scores = [], [], [], [], []
        for uid, submit_step, prompt, rewards in running:
            for session, reward in enumerate(rewards):
                keys.append(f"{uid}_{session}_0")
                tags.append({"status": "success", "seq_len": 8, "global_steps": submit_step})
                uids.append(uid)
                prompts.append(prompt)
                row = torch.zeros(RESPONSE_LENGTH)
                row[-1] = reward  # verl puts the sequence reward on the last response token
                scores.append(row)
        fields = tensordict.TensorDict(
            {
                "uid": tensordict.NonTensorStack(*uids),
                "raw_prompt": tensordict.NonTensorStack(*prompts),
                "rm_scores": torch.stack(scores),
                "response_mask": torch.ones(len(keys), RESPONSE_LENGTH, dtype=torch.long),
            },
            batch_size=[len(keys)],
        )
        tq.kv_batch_put(keys=keys, partition_id=TRAIN, fields=fields, tags=tags)
        prompt_keys = [uid for uid, _, _, _ in running]
        tq.kv_batch_put(keys=prompt_keys, partition_id=TRAIN, tags=[{"status": "finished"} for _ in prompt_keys])


@contextlib.contextmanager
def rollouts_finish_at_next_poll(loop: ScriptedAgentLoop) -> Iterator[ScriptedAgentLoop]:
    """Route ``transfer_queue.kv_list`` (verl's metadata poll) through ``loop.finish_running`` first."""
    tq = require("transfer_queue", "verl's v1 trainer")
    real_kv_list = tq.kv_list

    def kv_list(partition_id: str | None = None):
        loop.finish_running()
        return real_kv_list(partition_id)

    tq.kv_list = kv_list
    try:
        yield loop
    finally:
        tq.kv_list = real_kv_list


class PromptLoader:
    """An endless, checkpointable loader of single-prompt batches in verl's collate format."""

    def __init__(self) -> None:
        self.drawn = 0

    def __iter__(self):
        while True:
            self.drawn += 1
            yield {"raw_prompt": np.array([f"prompt {self.drawn - 1}"], dtype=object)}

    @staticmethod
    def index_of(raw_prompt: str) -> int:
        return int(raw_prompt.rsplit(" ", 1)[1])

    def state_dict(self) -> dict:
        return {"drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.drawn = state["drawn"]


class _NoWorkers:
    """verl's actor worker group where a checkpoint is saved or loaded: nothing to do without a model."""

    def save_checkpoint(self, *args, **kwargs) -> None:
        pass

    def load_checkpoint(self, *args, **kwargs) -> None:
        pass


def sync_trainer(config, agent_loop: ScriptedAgentLoop):
    """verl's ``PPOTrainerSync`` with only what the sampling and checkpoint paths read set (no model workers)."""
    trainer_sync = require("verl.trainer.ppo.v1.trainer_sync", "verl's v1 sync trainer")
    checkpoint_callback = require("verl.trainer.ppo.checkpoint_callback", "verl's v1 sync trainer")
    trainer = object.__new__(trainer_sync.PPOTrainerSync)
    trainer.config = config
    trainer.trainer_mode = config.trainer.v1.trainer_mode
    trainer.checkpoint_callback = checkpoint_callback.build_checkpoint_callback(config)
    trainer.use_critic = False
    trainer.global_steps = 1
    trainer.parameter_sync_step = 1
    trainer.train_dataloader = PromptLoader()
    trainer.train_dataloader_it = None
    trainer.actor_rollout_wg = _NoWorkers()
    trainer.agent_loop_manager = agent_loop
    trainer.replay_buffer = trainer._build_replay_buffer()
    trainer.replay_buffer.poll_interval = 0.0
    return trainer


def batch_groups(batch) -> dict[str, dict]:
    """Per group (the ``uid`` field stored with its trajectories): rewards by session and submission step."""
    tq = require("transfer_queue", "verl's v1 trainer")
    fields = ["uid", "raw_prompt", "rm_scores"]
    data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
    groups: dict[str, dict] = {}
    rows = zip(batch.keys, batch.tags, data["uid"], data["raw_prompt"], data["rm_scores"].unbind(), strict=True)
    for key, tag, uid, prompt, scores in rows:
        group = groups.setdefault(
            str(uid), {"rewards": {}, "submit_step": tag["global_steps"], "keys": [], "prompt": str(prompt)}
        )
        group["rewards"][int(key.rsplit("_", 2)[1])] = float(scores[-1])
        group["keys"].append(key)
    for group in groups.values():
        group["rewards"] = tuple(group["rewards"][s] for s in sorted(group["rewards"]))
    return groups


def run_sync_steps(trainer, steps: int, first_step: int = 1, inspect: Callable | None = None) -> list[dict]:
    """verl's per-step order: ``prepare_step`` (one fresh batch), ``sample``, train, clear the batch's keys.

    ``inspect(trainer, batch)`` runs where verl trains (before the batch's keys are cleared)."""
    tq = require("transfer_queue", "verl's v1 trainer")
    loop: ScriptedAgentLoop = trainer.agent_loop_manager
    batch_size = trainer.config.data.train_batch_size
    results = []
    with rollouts_finish_at_next_poll(loop):
        for step in range(first_step, first_step + steps):
            trainer.global_steps = step
            calls, prompts = loop.calls, loop.prompts
            cached_before = len(prompt_tags())
            trainer.prepare_step()
            batch, metrics = trainer.replay_buffer.sample(global_steps=step, partition_id=TRAIN, batch_size=batch_size)
            groups = batch_groups(batch)
            if inspect is not None:
                inspect(trainer, batch)
            tq.kv_clear(keys=batch.keys, partition_id=TRAIN)
            # by prompt (uids are random uuids; a copy sorts after its original)
            order = sorted(groups, key=lambda u: (groups[u]["prompt"], u.partition("-copy")[2]))
            results.append(
                {
                    "uids": order,
                    "prompts_trained": [groups[u]["prompt"] for u in order],
                    "rewards": [groups[u]["rewards"] for u in order],
                    "ages": [step - groups[u]["submit_step"] for u in order],
                    "metrics": metrics,
                    "calls": loop.calls - calls,
                    "call_sizes": loop.call_sizes[calls:],
                    "cached_before": cached_before,
                    "prompts": loop.prompts - prompts,
                    "cached_after": len(prompt_tags()),
                }
            )
    return results
