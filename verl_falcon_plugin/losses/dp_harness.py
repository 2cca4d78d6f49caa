"""Drive verl's own ``FSDPEngine.forward_backward_batch`` on gloo ranks with a tiny model.

Shared by the tests, the preflight and the benchmark. The scenarios and single-process
references are in :mod:`.dp_reference`, the per-rank batches and loss functions in
:mod:`.dp_batches`; this module runs them on forked gloo ranks. The engine method, the
micro-batching (fixed or dynamic), the DP token all-reduce, ``sft_loss`` /
``ppo_loss`` / ``agg_loss`` and Ulysses' ``Gather`` are verl's; only what needs
a GPU is stood in for:

* the model is a per-token bigram (embedding -> linear, float64), so cutting the
  packed sequence into SP shards needs no attention all-to-all;
* the tensors verl all-reduces live on the CPU (its ``get_device_id``/``get_device_name``
  answer CUDA on a CPU-only machine);
* FSDP's gradient reduction is an all-reduce-sum over the FSDP mesh (the whole
  world in verl's default ``fsdp_size=-1``) divided by its size, which is what
  FSDP's reduce-scatter averaging computes.

A scenario is (dp, sp, micro-batching); rank = dp_rank * sp + sp_rank as in
verl's ``(dp, sp)`` device mesh. SP replicas of a DP rank get the same data.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import nullcontext
from typing import Any, Callable

from verl_falcon_plugin.losses.dp_batches import (
    naive_per_rank_sft_loss,
    ppo_loss_functions,
    ppo_tensordict,
    sft_loss_functions,
    sft_tensordict,
    world_count_sft_loss,
)
from verl_falcon_plugin.losses.dp_reference import (
    HIDDEN,
    VOCAB,
    Scenario,
    Sequence,
    actor_config,
    make_sequences,
    ppo_fields,
    ragged_lengths,
    reference_ppo_grads,
    reference_sft_grads,
    tiny_model,
    token_log_probs,
)

__all__ = [  # the harness's public names, wherever they are defined
    "HIDDEN",
    "VOCAB",
    "EngineStandIn",
    "Scenario",
    "Sequence",
    "actor_config",
    "free_port",
    "make_sequences",
    "naive_per_rank_sft_loss",
    "ppo_fields",
    "ppo_loss_functions",
    "ppo_tensordict",
    "ragged_lengths",
    "reference_ppo_grads",
    "reference_sft_grads",
    "run_scenario_on_rank",
    "run_scenarios",
    "sft_loss_functions",
    "sft_tensordict",
    "tiny_model",
    "token_log_probs",
    "world_count_sft_loss",
]

# ---------------------------------------------------------------- verl engine on gloo ranks


class EngineStandIn:
    """What ``FSDPEngine.forward_backward_batch`` reads from ``self``, with a tiny model's forward."""

    def __init__(self, model: Any, dp_group: Any, sp_group: Any, dp_size: int, sp_size: int) -> None:
        self.module = model
        self.dp_group = dp_group
        self.sp_group = sp_group
        self.dp_size = dp_size
        self.ulysses_sequence_parallel_size = sp_size
        self.scaler = None

    def get_data_parallel_group(self) -> Any:
        return self.dp_group

    def get_data_parallel_size(self) -> int:
        return self.dp_size

    def _gradient_sync_context(self, *, is_last_micro_batch: bool) -> Any:
        return nullcontext()

    def forward_step(self, micro_batch: Any, loss_function: Callable, forward_only: bool) -> tuple[Any, dict]:
        import torch
        from verl.utils.ulysses import gather_outputs_and_unpad, ulysses_pad_and_slice_inputs

        input_ids = micro_batch["input_ids"]
        flat = input_ids.values().unsqueeze(0)  # (1, total_nnz), packed like verl's rmpad path
        labels = torch.roll(flat, shifts=-1, dims=1)
        if self.ulysses_sequence_parallel_size > 1:
            flat, _, pad = ulysses_pad_and_slice_inputs(flat, None, sp_size=self.ulysses_sequence_parallel_size)
            labels, _, _ = ulysses_pad_and_slice_inputs(labels, None, sp_size=self.ulysses_sequence_parallel_size)
        else:
            pad = 0
        logp = torch.log_softmax(self.module(flat.squeeze(0)), dim=-1)
        logp = logp.gather(-1, labels.squeeze(0).unsqueeze(-1)).squeeze(-1)
        if self.ulysses_sequence_parallel_size > 1:
            logp = gather_outputs_and_unpad(logp, gather_dim=0, unpad_dim=0, padding_size=pad, group=self.sp_group)
        log_probs = torch.nested.nested_tensor_from_jagged(logp, input_ids.offsets())
        loss, metrics = loss_function(model_output={"log_probs": log_probs}, data=micro_batch, dp_group=self.dp_group)
        return loss, {"loss": loss.detach().item(), "metrics": metrics}


def _mesh_groups(world: int, dp: int, sp: int) -> tuple[Any, Any, Any]:
    """This rank's (dp_group, sp_group) in verl's (dp, sp) mesh over ranks [0, world); every rank calls new_group."""
    import torch.distributed as dist

    rank = dist.get_rank()
    dp_group = sp_group = None
    for s in range(sp):
        members = [d * sp + s for d in range(dp)]
        group = dist.new_group(members)
        if rank in members:
            dp_group = group
    for d in range(dp):
        members = [d * sp + s for s in range(sp)]
        group = dist.new_group(members)
        if rank in members:
            sp_group = group
    world_group = dist.new_group(list(range(world)))
    return dp_group, sp_group, world_group


def run_scenario_on_rank(scenario: Scenario, loss_fn: Callable, groups: tuple[Any, Any, Any]) -> dict | None:
    """One step's gradients and loss on this rank, averaged over the scenario's world as FSDP does; None off-world."""
    import torch
    import torch.distributed as dist
    from verl.utils.ulysses import set_ulysses_sequence_parallel_group
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    rank = dist.get_rank()
    if rank >= scenario.world:
        return None
    dp_group, sp_group, world_group = groups
    dp_rank = rank // scenario.sp
    model = tiny_model()
    engine = EngineStandIn(model, dp_group, sp_group, scenario.dp, scenario.sp)
    seqs = make_sequences(scenario)[dp_rank]
    if scenario.kind == "ppo":
        data = ppo_tensordict(seqs, ppo_fields(scenario)[dp_rank], scenario)
    else:
        data = sft_tensordict(seqs, scenario)
    set_ulysses_sequence_parallel_group(sp_group if scenario.sp > 1 else None)
    try:
        output = FSDPEngine.forward_backward_batch(engine, data, loss_fn)
    finally:
        set_ulysses_sequence_parallel_group(None)
    grads = []
    for p in model.parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        dist.all_reduce(g, op=dist.ReduceOp.SUM, group=world_group)
        grads.append(g / scenario.world)
    loss = torch.tensor([sum(output["loss"])], dtype=torch.float64)  # this rank's micro-batch losses
    dist.all_reduce(loss, op=dist.ReduceOp.SUM, group=world_group)
    return {"grads": grads, "loss": loss.item() / scenario.world}


def _worker(rank: int, world: int, port: int, scenarios: list[Scenario], out_path: str, eps: float | None) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        import verl  # noqa: F401  (loads the plugin through verl's entry point)
        from verl.utils import seqlen_balancing
        from verl.workers.engine.fsdp import transformer_impl

        # verl asks the CUDA platform where to put the tensors it all-reduces; gloo reduces on the CPU
        transformer_impl.get_device_id = lambda: "cpu"
        seqlen_balancing.get_device_name = lambda: "cpu"

        from verl_falcon_plugin.losses.verl_hook import install

        install()
        too_big = [s.name for s in scenarios if s.world > world]
        if too_big:
            raise ValueError(f"scenarios {too_big} need more than the {world} ranks spawned")
        # every group first: new_group is collective over the world, so interleaving it with
        # subgroup collectives that only some ranks join would deadlock
        groups = [_mesh_groups(s.world, s.dp, s.sp) for s in scenarios]
        results: dict[str, dict[str, dict]] = {}
        for scenario, scenario_groups in zip(scenarios, groups):
            loss_functions = (
                ppo_loss_functions(scenario, eps)
                if scenario.kind == "ppo"
                else sft_loss_functions(eps, world_group=scenario_groups[2])
            )
            for kind, loss_fn in loss_functions.items():
                outcome = run_scenario_on_rank(scenario, loss_fn, scenario_groups)
                if outcome is not None:
                    results.setdefault(scenario.name, {})[kind] = outcome
        if rank == 0:
            tmp = out_path + ".tmp"
            torch.save(results, tmp)
            os.replace(tmp, out_path)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_scenarios(scenarios: list[Scenario], eps: float | None = None) -> dict[str, dict[str, dict]]:
    """Fork max(world) gloo ranks once, run every scenario with every loss; rank 0's averaged grads.

    Forked, not spawned: each spawned rank would re-import verl (tens of seconds on a loaded machine).
    """
    import torch
    import torch.multiprocessing as mp
    import verl  # noqa: F401  (imported once here; forked ranks inherit it instead of re-importing)

    from verl_falcon_plugin.losses.verl_hook import install

    install()
    world = max(s.world for s in scenarios)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "grads.pt")
        mp.start_processes(
            _worker, args=(world, free_port(), scenarios, out, eps), nprocs=world, join=True, start_method="fork"
        )
        return torch.load(out)
