"""What each gloo rank feeds verl's ``FSDPEngine.forward_backward_batch``: its micro-batch
TensorDicts (packed, ``NO_PADDING``, fixed or dynamic batch size) and the loss functions
compared (verl's stock ``sft_loss``, the plugin's balanced loss, a naive per-rank mean, the
DP x SP world-count bug, and verl's ``ppo_loss`` with the ``falcon_h1r`` policy loss).
"""

from __future__ import annotations

from typing import Any, Callable

from verl_falcon_plugin.losses.dp_reference import Scenario, Sequence, actor_config


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
