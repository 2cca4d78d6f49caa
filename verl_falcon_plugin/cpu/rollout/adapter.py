"""The trainer-side ``BaseRollout`` of the HF CPU rollout (CPU smoke runs and CI only; vLLM on GPUs).

verl's hybrid worker builds it from ``_ROLLOUT_REGISTRY[("hf", "async")]``
(``verl/workers/rollout/base.py:89``) and syncs weights into it through the "naive"
checkpoint engine (``engine_workers.update_weights``). Every trainer rank walks the
weight generator (FSDP gathers are collective); the rank that owns a replica's server
sends the full tensors to it through Ray.
"""

from __future__ import annotations

import os
from typing import Any, Generator, Optional

import ray
import torch
from verl.workers.rollout.base import BaseRollout

from verl_falcon_plugin.cpu.rollout.replica import server_actor_name


def _full(tensor: torch.Tensor) -> torch.Tensor:
    if hasattr(tensor, "full_tensor"):  # a DTensor shard
        tensor = tensor.full_tensor()
    return tensor.detach().to("cpu", copy=True)


class HFServerAdapter(BaseRollout):
    """Receives the trainer's weights for one HF rollout server (the rank with rollout rank 0 owns it)."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1) -> None:
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ["RANK"])
        rollout_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self._has_server = rank % rollout_world_size == 0
        self._server: Optional[Any] = None

    def _server_handle(self) -> Any:
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None  # nothing is released on CPU

    async def release(self) -> None:
        return None

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        wire_format: str = "named_tensors",
        global_steps: Optional[int] = None,
        **_kwargs: Any,
    ) -> None:
        if wire_format != "named_tensors":
            raise ValueError(f"the HF CPU rollout takes wire_format='named_tensors', got {wire_format!r}")
        state_dict = {name: _full(tensor) for name, tensor in weights}
        if self._has_server:
            await self._server_handle().update_weights.remote(state_dict, global_steps=global_steps)
