"""Fused linear cross-entropy for Falcon-H1: ``lm_head_multiplier`` folded, packed- and Ulysses-aware.

The logits ``lm_head(h) * lm_head_multiplier`` are never materialised: since
``lm_head`` has no bias, ``(h W^T) m == (h m) W^T`` and the multiplier is folded
into the hidden states that Liger's chunked kernel consumes.

Labels and normalisation follow one rule, so that the loss is the same whether
a batch is padded, packed into one row, or split over Ulysses ranks:

* the target of position ``t`` is the label at ``t + 1`` *of the same
  sequence*; in a packed row a new sequence starts where ``position_ids``
  drops to 0, and the position before it gets no target (HF's plain shift
  would make it predict the next sequence's first token);
* the loss is ``sum of token losses / N``. ``N`` is ``num_items_in_batch``
  when the caller passes it (the global valid-token count that a balanced
  data-parallel token loss divides by), otherwise the number of valid targets
  in this forward, summed over the Ulysses group. On a Ulysses rank the
  returned value is that rank's *share*: the shares of the group add up to
  the loss of the whole sequence, and so do their gradients.

Under Ulysses each rank holds a slice of the sequence, so its last target
lives on the next rank: the caller must pass ``shift_labels`` rolled over the
*whole* sequence before slicing (verl's engine does); plain ``labels`` are
refused there.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def shift_labels_for_packed(
    labels: torch.Tensor, position_ids: torch.Tensor | None, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Next-token targets of ``labels`` (..., T), with no target across a packed sequence boundary."""
    shifted = torch.nn.functional.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    if position_ids is None:
        return shifted.contiguous()
    if position_ids.dim() != labels.dim() or position_ids.shape[-1] != labels.shape[-1]:
        raise ValueError(
            f"position_ids of shape {tuple(position_ids.shape)} do not match labels of shape "
            f"{tuple(labels.shape)}: pass the position_ids of the same (unsliced) tokens"
        )
    next_starts_sequence = torch.nn.functional.pad(position_ids[..., 1:] == 0, (0, 1), value=False)
    return shifted.masked_fill(next_starts_sequence.expand_as(shifted), ignore_index).contiguous()


def ulysses_group():
    """The active Ulysses sequence-parallel group (size > 1), else None.

    Asked of the Falcon-H1 SP patch (``verl_falcon_plugin.models.falcon_h1.ulysses``), which
    follows verl's Ulysses group unless a group was set explicitly: the loss must be
    normalised over exactly the ranks the model's all-to-alls span.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    from verl_falcon_plugin.models.falcon_h1 import ulysses

    group = ulysses.sequence_parallel_group()
    if group is None or ulysses.group_size(group) <= 1:
        return None
    return group


def token_count(shift_labels: torch.Tensor, ignore_index: int, group) -> torch.Tensor:
    """Valid targets in this forward, summed over ``group`` (a constant: no gradient flows through it)."""
    count = (shift_labels != ignore_index).sum().to(torch.float32)
    if group is not None:
        torch.distributed.all_reduce(count, group=group)
    return count.clamp_min(1.0)


def falcon_h1_fused_linear_cross_entropy(
    hidden_states: torch.Tensor,
    lm_head_weight: torch.Tensor,
    lm_head_multiplier: float,
    shift_labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    group=None,
) -> torch.Tensor:
    """``sum_t CE(lm_head(h_t) * m, y_t) / N`` without materialising the logits (see the module doc)."""
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    hidden = hidden_states.reshape(-1, hidden_states.shape[-1]) * lm_head_multiplier
    targets = shift_labels.reshape(-1).to(hidden.device)
    if targets.shape[0] != hidden.shape[0]:
        raise ValueError(
            f"shift_labels has {targets.shape[0]} targets for {hidden.shape[0]} hidden states: "
            f"they must describe the same (local) tokens"
        )
    if num_items_in_batch is None and group is None:
        # the plain token mean: Liger's "mean" scales the gradients inside the kernel, whereas
        # sum / N makes its backward rescale the whole V x H weight gradient by 1/N
        return liger_fused_linear_cross_entropy(
            hidden, lm_head_weight, targets, ignore_index=ignore_index, reduction="mean"
        )
    total = liger_fused_linear_cross_entropy(
        hidden, lm_head_weight, targets, ignore_index=ignore_index, reduction="sum"
    )
    if num_items_in_batch is None:
        num_items_in_batch = token_count(targets, ignore_index, group)
    elif torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
