"""In-memory stand-ins for TransferQueue and verl's agent loop, so verl's real sampler and refill code
run on CPU without Ray (tests, the verl-path benchmark).

Only the storage and the generation are fakes; the code they drive is verl's
(``ReplayBuffer``, ``PPOTrainer._build_replay_buffer``, ``prepare_step``,
``_add_prompts_to_generate`` -> ``_next_train_batch`` -> ``_submit_batch_to_rollout``)
and ours. Rollouts finish one poll after submission (at the next ``kv_list``),
which exercises verl's in-flight accounting and draining.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterator

import numpy as np

from verl_falcon_plugin.requires import require

#: ``rewards(index, prompt_tag)`` -> the G rewards of the ``index``-th prompt generated
RewardSource = Callable[[int, dict], tuple[float, ...]]


class FakeTransferQueue:
    """``kv_list`` / ``kv_batch_put`` / ``kv_batch_get`` / ``kv_clear`` with TransferQueue's semantics."""

    API = ("kv_list", "kv_batch_put", "kv_batch_get", "kv_clear")

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, dict]] = defaultdict(dict)
        self.values: dict[str, dict[str, dict]] = defaultdict(dict)
        self.on_list: Callable[[], None] | None = None

    def kv_list(self, partition_id: str | None = None):
        if self.on_list is not None:
            self.on_list()
        parts = [partition_id] if partition_id is not None else list(self.tags)
        return {p: {k: dict(t) for k, t in self.tags[p].items()} for p in parts}

    def kv_batch_put(self, keys, partition_id, tags=None, fields=None):
        for i, key in enumerate(keys):
            self.tags[partition_id].setdefault(key, {}).update(tags[i] if tags else {})

    def kv_batch_get(self, keys, partition_id, select_fields=None):
        fields = select_fields or ["rm_scores"]
        return {f: [self.values[partition_id][k][f] for k in keys] for f in fields}

    def kv_clear(self, keys, partition_id):
        for key in [keys] if isinstance(keys, str) else keys:
            self.tags[partition_id].pop(key, None)
            self.values[partition_id].pop(key, None)

    def prompt_tags(self, partition_id: str = "train") -> dict[str, dict]:
        return {k: t for k, t in self.tags[partition_id].items() if t.get("is_prompt")}


@contextlib.contextmanager
def fake_transfer_queue(store: FakeTransferQueue) -> Iterator[FakeTransferQueue]:
    """Route every ``transfer_queue.kv_*`` call (verl's ``tq.kv_*``) to ``store`` for the duration."""
    tq = require("transfer_queue", "verl's v1 trainer")
    saved = {name: getattr(tq, name) for name in FakeTransferQueue.API}
    try:
        for name in FakeTransferQueue.API:
            setattr(tq, name, getattr(store, name))
        yield store
    finally:
        for name, fn in saved.items():
            setattr(tq, name, fn)


class FakeAgentLoop:
    """``generate_sequences(batch)``: G rollouts per prompt with rewards from ``rewards``; counts calls."""

    def __init__(self, store: FakeTransferQueue, rewards: RewardSource) -> None:
        self.store = store
        self.rewards = rewards
        self.calls = 0
        self.prompts = 0
        self.rewards_of: dict[str, tuple[float, ...]] = {}
        self.submit_step: dict[str, int] = {}
        self.call_sizes: list[int] = []
        self._running: list[str] = []
        store.on_list = self.finish_running

    def generate_sequences(self, batch) -> None:
        self.call_sizes.append(len(batch["uid"]))
        for uid in list(batch["uid"]):
            tag = self.store.tags["train"][uid]
            self.submit_step[uid] = tag["global_steps"]
            self.rewards_of[uid] = tuple(self.rewards(self.prompts, tag))
            self.prompts += 1
            tag["status"] = "running"
            self._running.append(uid)
        self.calls += 1

    def finish_running(self) -> None:
        torch = require("torch", "the fake rollout")
        for uid in self._running:
            for i, reward in enumerate(self.rewards_of[uid]):
                key = f"{uid}_{i}_0"
                self.store.tags["train"][key] = {"status": "finished", "seq_len": 8}
                scores = torch.zeros(4)
                scores[-1] = reward
                self.store.values["train"][key] = {"rm_scores": scores}
            self.store.tags["train"][uid]["status"] = "finished"
        self._running = []


class PromptLoader:
    """An endless loader of single-prompt batches in verl's collate format."""

    def __iter__(self):
        count = 0
        while True:
            count += 1
            yield {"raw_prompt": np.array([f"prompt {count}"], dtype=object)}


def sync_trainer(config, agent_loop: FakeAgentLoop):
    """verl's ``PPOTrainerSync`` with only what the sampling path reads set (no workers, no Ray)."""
    trainer_sync = require("verl.trainer.ppo.v1.trainer_sync", "verl's v1 sync trainer")
    trainer = object.__new__(trainer_sync.PPOTrainerSync)
    trainer.config = config
    trainer.trainer_mode = config.trainer.v1.trainer_mode
    trainer.global_steps = 1
    trainer.parameter_sync_step = 1
    trainer.train_dataloader = PromptLoader()
    trainer.train_dataloader_it = None
    trainer.agent_loop_manager = agent_loop
    trainer.replay_buffer = trainer._build_replay_buffer()
    trainer.replay_buffer.poll_interval = 0.0
    return trainer


def run_sync_steps(trainer, steps: int, first_step: int = 1) -> list[dict]:
    """verl's per-step order: ``prepare_step`` (one fresh batch), ``sample``, train, clear the batch's keys."""
    loop: FakeAgentLoop = trainer.agent_loop_manager
    batch_size = trainer.config.data.train_batch_size
    results = []
    for step in range(first_step, first_step + steps):
        trainer.global_steps = step
        calls, prompts = loop.calls, loop.prompts
        cached_before = len(loop.store.prompt_tags())
        trainer.prepare_step()
        batch, metrics = trainer.replay_buffer.sample(global_steps=step, partition_id="train", batch_size=batch_size)
        uids = sorted({key.split("_")[0] for key in batch.keys})
        loop.store.kv_clear(keys=batch.keys, partition_id="train")
        results.append(
            {
                "uids": uids,
                "rewards": [loop.rewards_of[u] for u in uids],
                "ages": [step - loop.submit_step[u] for u in uids],
                "metrics": metrics,
                "calls": loop.calls - calls,
                "call_sizes": loop.call_sizes[calls:],
                "cached_before": cached_before,
                "prompts": loop.prompts - prompts,
                "cached_after": len(loop.store.prompt_tags()),
            }
        )
    return results
