"""verl ``RolloutReplica`` for the HF CPU rollout server (CPU smoke runs and CI only; vLLM on GPUs).

Registered as rollout ``name: hf`` in ``RolloutReplicaRegistry`` (``verl/workers/rollout/replica.py:317``).
Each replica (tensor parallel 1) starts one :class:`~verl_falcon_plugin.cpu.rollout.server.HFRolloutServer`
actor, named as verl names vLLM's so that the trainer-side adapter finds it.
"""

from __future__ import annotations

import ray
from verl.workers.rollout.replica import RolloutReplica

from verl_falcon_plugin.cpu.rollout.server import HFRolloutServer

SERVER_PREFIX = "hf_"


def server_actor_name(replica_rank: int, node_rank: int = 0, kind: str = "", suffix: str = "") -> str:
    kind = f"{kind}_" if kind else ""
    return f"{SERVER_PREFIX}server_{kind}{replica_rank}_{node_rank}{suffix}"


class HFRolloutReplica(RolloutReplica):
    """A replica of the HF CPU rollout: one server actor, tensor parallel 1."""

    async def launch_servers(self) -> None:
        if self.world_size != 1:
            raise ValueError(
                f"the HF CPU rollout is tensor/data/pipeline parallel 1 per replica, got world size {self.world_size}: "
                "set actor_rollout_ref.rollout.tensor_model_parallel_size=1"
            )
        kind = "reward" if self.is_reward_model else ("teacher" if self.is_teacher_model else "")
        server = (
            ray.remote(HFRolloutServer)
            .options(
                name=server_actor_name(self.replica_rank, 0, kind, self.name_suffix),
                max_concurrency=self.max_concurrency,
                num_cpus=0,
            )
            .remote(
                config=self.config,
                model_config=self.model_config,
                rollout_mode=self.rollout_mode,
                workers=self.workers,
                replica_rank=self.replica_rank,
            )
        )
        await server.launch_server.remote()
        address, _port = await server.get_server_address.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = address
