"""Drive verl's own ``FSDPEngine.forward_backward_batch`` on gloo ranks with a tiny model.

Shared by the tests, the preflight and the benchmark. The engine method, the
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
from dataclasses import dataclass, field
from typing import Any, Callable

VOCAB = 11
HIDDEN = 5


@dataclass(frozen=True)
class Scenario:
    name: str
    dp: int
    sp: int = 1
    micro_batches: int = 2  # per rank, fixed size; ignored when max_tokens is set
    max_tokens: int | None = None  # dynamic batch size: token budget per micro-batch
    seqs_per_rank: int = 4
    empty_ranks: tuple[int, ...] = ()  # DP ranks whose loss mask is all zero
    seed: int = 0
    kind: str = "sft"  # "sft": verl's sft_loss path; "ppo": verl's ppo_loss with the falcon_h1r policy loss
    positive_nll_coef: float = 0.5

    @property
    def world(self) -> int:
        return self.dp * self.sp


@dataclass
class Sequence:
    prompt: list[int]
    response: list[int]
    loss_mask: list[int] = field(default_factory=list)  # over prompt + response


def tiny_model(seed: int = 1234) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Embedding(VOCAB, HIDDEN), torch.nn.Linear(HIDDEN, VOCAB)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return model


def ragged_lengths(count: int, rng: Any, mean_log: float = 2.0, sigma: float = 1.0, cap: int = 60) -> list[int]:
    """Log-normal response lengths (the long reasoning traces next to short answers)."""
    return [int(min(cap, max(1, round(rng.lognormvariate(mean_log, sigma))))) for _ in range(count)]


def make_sequences(scenario: Scenario) -> list[list[Sequence]]:
    """Per DP rank, its sequences. Rank r's lengths scale with r so ranks are unbalanced."""
    import random

    rng = random.Random(scenario.seed)
    ranks = []
    for r in range(scenario.dp):
        seqs = []
        for length in ragged_lengths(scenario.seqs_per_rank, rng, mean_log=1.2 + 0.8 * r):
            prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(1, 4))]
            response = [rng.randrange(VOCAB) for _ in range(length)]
            valid = 0 if r in scenario.empty_ranks else 1
            seqs.append(Sequence(prompt, response, [0] * len(prompt) + [valid] * length))
        ranks.append(seqs)
    return ranks


# ---------------------------------------------------------------- reference (one process)


def token_log_probs(model: Any, ids: Any) -> Any:
    """log p(ids[t+1] | ids[t]) for t < len-1, and the wrap-around label at the end (masked out)."""
    import torch

    labels = torch.roll(ids, shifts=-1)
    return torch.log_softmax(model(ids), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def reference_sft_grads(scenario: Scenario) -> list[Any]:
    """Gradient of the token mean of -log p over the union of all ranks' loss tokens, in one process."""
    import torch

    model = tiny_model()
    total, count = torch.zeros((), dtype=torch.float64), 0
    for seqs in make_sequences(scenario):
        for s in seqs:
            ids = torch.tensor(s.prompt + s.response)
            mask = torch.tensor(s.loss_mask[1:] + [0], dtype=torch.float64)  # target t+1 is predicted at t
            total = total + (-token_log_probs(model, ids) * mask).sum()
            count += sum(s.loss_mask)
    (total / count).backward()
    return [p.grad.clone() for p in model.parameters()]


# ---------------------------------------------------------------- PPO / falcon_h1r


def ppo_fields(scenario: Scenario) -> list[dict[str, Any]]:
    """Per DP rank: padded response tensors (advantages, old log-probs, mask) over one global width."""
    import random

    import torch

    ranks = make_sequences(scenario)
    width = max(len(s.response) for seqs in ranks for s in seqs)
    model = tiny_model()
    rng = random.Random(scenario.seed + 1)
    out = []
    for seqs in ranks:
        adv = torch.zeros(len(seqs), width, dtype=torch.float64)
        old = torch.zeros(len(seqs), width, dtype=torch.float64)
        mask = torch.zeros(len(seqs), width, dtype=torch.int64)
        for i, s in enumerate(seqs):
            n = len(s.response)
            ids = torch.tensor(s.prompt + s.response)
            with torch.no_grad():
                logp = token_log_probs(model, ids)[len(s.prompt) - 1 : len(ids) - 1]
            old[i, :n] = logp + 0.3 * torch.randn(n, generator=torch.Generator().manual_seed(rng.randrange(10**6)))
            adv[i, :n] = rng.choice([-1.0, -0.5, 0.0, 0.0, 0.7, 1.3])  # GRPO: one advantage per response
            mask[i, :n] = s.loss_mask[len(s.prompt) :][0] if n else 0
        out.append({"advantages": adv, "old_log_probs": old, "response_mask": mask})
    return out


def actor_config(coef: float, eps: float | None = None) -> Any:
    from verl.workers.config import ActorConfig

    from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS
    from verl_falcon_plugin.losses.grpo import FalconH1RPolicyLossConfig

    return ActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
        loss_agg_mode="token-mean",
        policy_loss=FalconH1RPolicyLossConfig(
            positive_nll_coef=coef, positive_nll_eps=DEFAULT_EPS if eps is None else eps
        ),
    )


def reference_ppo_grads(scenario: Scenario) -> list[Any]:
    """One process, union of all ranks: verl's vanilla loss (global token mean) + coef * positive-token NLL mean."""
    import torch
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    model = tiny_model()
    fields = ppo_fields(scenario)
    logps, advs, olds, masks = [], [], [], []
    for seqs, f in zip(make_sequences(scenario), fields):
        width = f["advantages"].shape[1]
        for i, s in enumerate(seqs):
            ids = torch.tensor(s.prompt + s.response)
            logp = token_log_probs(model, ids)[len(s.prompt) - 1 : len(ids) - 1]
            logps.append(torch.nn.functional.pad(logp, (0, width - logp.shape[0])))
        advs.append(f["advantages"])
        olds.append(f["old_log_probs"])
        masks.append(f["response_mask"])
    log_prob, adv, old, mask = torch.stack(logps), torch.cat(advs), torch.cat(olds), torch.cat(masks).bool()
    config = actor_config(0.0)
    pg, _ = compute_policy_loss_vanilla(old, log_prob, adv, mask, "token-mean", config)
    positive = mask & (adv > 0)  # GRPO: the advantage is constant over a response
    nll = (-log_prob)[positive].sum() / max(int(positive.sum()), 1)
    (pg + scenario.positive_nll_coef * nll).backward()
    return [p.grad.clone() for p in model.parameters()]


def ppo_tensordict(seqs: list[Sequence], fields: dict[str, Any], scenario: Scenario) -> Any:
    import torch
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    def nested(rows: list[list[int]]) -> Any:
        return torch.nested.as_nested_tensor([torch.tensor(r) for r in rows], layout=torch.jagged)

    non_tensor = {
        "pad_mode": DatasetPadMode.NO_PADDING,
        "max_response_len": fields["advantages"].shape[1],
        "global_batch_size": len(seqs) * scenario.dp,
    }
    if scenario.max_tokens is None:
        non_tensor.update(use_dynamic_bsz=False, micro_batch_size_per_gpu=len(seqs) // scenario.micro_batches)
    else:
        non_tensor.update(use_dynamic_bsz=True, max_token_len_per_gpu=scenario.max_tokens)
    return tu.get_tensordict(
        tensor_dict={
            "input_ids": nested([s.prompt + s.response for s in seqs]),
            "prompts": nested([s.prompt for s in seqs]),
            "responses": nested([s.response for s in seqs]),
            "loss_mask": fields["response_mask"],
            **fields,
        },
        non_tensor_dict=non_tensor,
    )


def ppo_loss_functions(scenario: Scenario, eps: float | None = None) -> dict[str, Callable]:
    """verl's ppo_loss (as the plugin leaves it bound in engine_workers) with the falcon_h1r policy loss."""
    from functools import partial

    from verl.workers import engine_workers

    return {"falcon_h1r": partial(engine_workers.ppo_loss, config=actor_config(scenario.positive_nll_coef, eps))}


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


def sft_tensordict(seqs: list[Sequence], scenario: Scenario) -> Any:
    import torch
    from verl.utils import tensordict_utils as tu
    from verl.utils.dataset.dataset_utils import DatasetPadMode

    ids = [torch.tensor(s.prompt + s.response) for s in seqs]
    masks = [torch.tensor(s.loss_mask, dtype=torch.int64) for s in seqs]
    non_tensor = {"pad_mode": DatasetPadMode.NO_PADDING, "local_num_tokens": int(sum(m.sum() for m in masks))}
    if scenario.max_tokens is None:
        non_tensor.update(use_dynamic_bsz=False, micro_batch_size_per_gpu=len(seqs) // scenario.micro_batches)
    else:
        non_tensor.update(use_dynamic_bsz=True, max_token_len_per_gpu=scenario.max_tokens)
    return tu.get_tensordict(
        tensor_dict={
            "input_ids": torch.nested.as_nested_tensor(ids, layout=torch.jagged),
            "loss_mask": torch.nested.as_nested_tensor(masks, layout=torch.jagged),
        },
        non_tensor_dict=non_tensor,
    )


def naive_per_rank_sft_loss(config: Any, model_output: Any, data: Any, dp_group: Any = None) -> Any:
    """The unbalanced baseline: each rank divides by its *own* token count (verl's sft_loss otherwise)."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import sft_loss

    local = tu.get_non_tensor_data(data=data, key="local_num_tokens", default=None)
    tu.assign_non_tensor(data, batch_num_tokens=local, dp_size=1)
    return sft_loss(config, model_output, data, dp_group)


def world_count_sft_loss(config: Any, model_output: Any, data: Any, dp_group: Any = None, *, world_group: Any):
    """The SP bug verl PR 3691 describes: the token count reduced over DP x SP, so SP replicas count twice."""
    import torch
    import torch.distributed as dist
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import sft_loss

    count = torch.tensor([tu.get_non_tensor_data(data=data, key="local_num_tokens", default=None)])
    dist.all_reduce(count, op=dist.ReduceOp.SUM, group=world_group)
    tu.assign_non_tensor(data, batch_num_tokens=int(count.item()))
    return sft_loss(config, model_output, data, dp_group)


def sft_loss_functions(eps: float | None = None, world_group: Any = None) -> dict[str, Callable]:
    """verl's stock loss, our balanced one (verl + eps), the naive per-rank mean and the world-count bug."""
    from functools import partial

    from verl.workers.utils.losses import sft_loss

    from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS, balanced_sft_loss

    return {
        "verl": partial(sft_loss, config=None),
        "balanced": partial(balanced_sft_loss, config=None, eps=DEFAULT_EPS if eps is None else eps),
        "naive": partial(naive_per_rank_sft_loss, config=None),
        "world_count": partial(world_count_sft_loss, config=None, world_group=world_group),
    }


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
