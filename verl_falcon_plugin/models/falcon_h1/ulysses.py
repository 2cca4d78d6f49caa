"""Ulysses sequence parallelism: which process group, and the differentiable collectives.

The group is verl's (``verl.utils.ulysses.get_ulysses_sequence_parallel_group``) when
verl is in use, so the patched model follows whatever group verl's FSDP engine sets
for the current micro-batch. Without verl, :func:`set_sequence_parallel_group` sets it.

Every collective here is an autograd function whose backward is the adjoint
collective, so gradients are exact. We do not reuse verl's ``SeqAllToAll`` / ``Gather``
so that :func:`verl_falcon_plugin.patch_falcon_h1` works without verl, and because
verl's ``Gather`` backward *slices* the gradient (it assumes replicated downstream
compute), while the mixer's replicated B/C need the gradient *summed* over ranks.
"""

from __future__ import annotations

import sys
from typing import Any

from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 Ulysses sequence parallelism")
dist = torch.distributed

_OWN_GROUP: Any = None
_OWN_GROUP_SET = False


def set_sequence_parallel_group(group: Any) -> None:
    """Use ``group`` (a ``torch.distributed`` process group, or None for no SP) for the patched model.

    Takes precedence over verl's Ulysses group; call ``set_sequence_parallel_group(None)``
    *and* leave verl's group unset to run without sequence parallelism.
    """
    global _OWN_GROUP, _OWN_GROUP_SET
    _OWN_GROUP, _OWN_GROUP_SET = group, group is not None


def sequence_parallel_group() -> Any:
    """The active SP process group, or None when the model runs without sequence parallelism."""
    if _OWN_GROUP_SET:
        return _OWN_GROUP
    verl_ulysses = sys.modules.get("verl.utils.ulysses")
    if verl_ulysses is not None:
        return verl_ulysses.get_ulysses_sequence_parallel_group()
    return None


def group_size(group: Any) -> int:
    return dist.get_world_size(group) if group is not None else 1


def group_rank(group: Any) -> int:
    return dist.get_rank(group) if group is not None else 0


def _all_to_all(x: "torch.Tensor", scatter_dim: int, gather_dim: int, group: Any) -> "torch.Tensor":
    world = dist.get_world_size(group)
    inputs = [chunk.contiguous() for chunk in x.chunk(world, dim=scatter_dim)]
    outputs = [torch.empty_like(inputs[0]) for _ in range(world)]
    dist.all_to_all(outputs, inputs, group=group)
    return torch.cat(outputs, dim=gather_dim)


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scatter_dim: int, gather_dim: int, group):
        ctx.dims, ctx.group = (scatter_dim, gather_dim), group
        return _all_to_all(x, scatter_dim, gather_dim, group)

    @staticmethod
    def backward(ctx, grad):
        scatter_dim, gather_dim = ctx.dims
        return _all_to_all(grad, gather_dim, scatter_dim, ctx.group), None, None, None


class _AllGather(torch.autograd.Function):
    """All-gather along ``dim``; backward reduce-scatters (sums) the gradient.

    The reduce-scatter is an all-to-all followed by a local sum: gloo has no
    reduce_scatter, and this moves the same number of bytes.
    """

    @staticmethod
    def forward(ctx, x, dim: int, group):
        ctx.dim, ctx.group = dim, group
        world = dist.get_world_size(group)
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous(), group=group)
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad):
        received = _all_to_all(grad.unsqueeze(0), ctx.dim + 1, 0, ctx.group)
        return received.sum(0), None, None


def seq_to_heads(x: "torch.Tensor", *, seq_dim: int, head_dim: int, group: Any) -> "torch.Tensor":
    """(…, seq/sp, …, heads, …) -> (…, seq, …, heads/sp, …): gather the sequence, scatter the heads."""
    return _AllToAll.apply(x, head_dim, seq_dim, group)


def heads_to_seq(x: "torch.Tensor", *, seq_dim: int, head_dim: int, group: Any) -> "torch.Tensor":
    """(…, seq, …, heads/sp, …) -> (…, seq/sp, …, heads, …): the inverse of :func:`seq_to_heads`."""
    return _AllToAll.apply(x, seq_dim, head_dim, group)


def gather_seq(x: "torch.Tensor", *, seq_dim: int, group: Any) -> "torch.Tensor":
    """Replicate the full sequence on every rank; the gradient is summed back onto the owning rank."""
    return _AllGather.apply(x, seq_dim, group)


def gather_seq_no_grad(x: "torch.Tensor", *, seq_dim: int, group: Any) -> "torch.Tensor":
    """All-gather of integer metadata (position ids) along the sequence."""
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, dim=seq_dim)


def check_divisible(*, sp_size: int, attention_heads: int, key_value_heads: int, ssm_heads: int) -> None:
    """Raise a ValueError naming the numbers when ``sp_size`` cannot split the model's heads."""
    if sp_size <= 1:
        return
    problems = []
    if attention_heads % sp_size:
        problems.append(f"num_attention_heads={attention_heads} is not divisible by ulysses_sp_size={sp_size}")
    if key_value_heads % sp_size and sp_size % key_value_heads:
        problems.append(
            f"num_key_value_heads={key_value_heads} and ulysses_sp_size={sp_size}: neither divides the other "
            "(KV heads are replicated only when sp is a multiple of them)"
        )
    if ssm_heads % sp_size:
        problems.append(f"mamba_n_heads={ssm_heads} is not divisible by ulysses_sp_size={sp_size}")
    if problems:
        raise ValueError(
            "Falcon-H1 Ulysses sequence parallelism splits attention and SSM heads across ranks: "
            + "; ".join(problems)
            + ". Choose a ulysses_sequence_parallel_size that divides them."
        )
