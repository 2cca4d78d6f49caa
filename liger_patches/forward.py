"""``FalconH1ForCausalLM.forward`` with fused linear cross-entropy (see :mod:`liger_patches.fused_ce`).

Differences from Liger 0.8.5's ``falcon_h1.lce_forward``, which folds the
multiplier the same way:

* targets never cross a packed-sequence boundary (from ``position_ids``), in
  both the fused and the logits branch, so the two branches compute one loss;
* the normaliser is ``num_items_in_batch`` or the valid-target count of the
  Ulysses group, so sequence-parallel shards add up to the full loss;
* model-only keyword arguments (e.g. ``cu_seq_lens_q`` of a packed batch) go to
  the decoder untouched and loss-only ones (``shift_labels``,
  ``num_items_in_batch``, ``ignore_index``) do not, so the forward composes
  with patches that replace the decoder's or the mixer's forward.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.utils.generic import can_return_tuple

from liger_patches.fused_ce import (
    IGNORE_INDEX,
    falcon_h1_fused_linear_cross_entropy,
    shift_labels_for_packed,
    token_count,
    ulysses_group,
)


def _targets(labels, shift_labels, position_ids, ignore_index, group) -> torch.Tensor | None:
    if shift_labels is not None:
        return shift_labels
    if labels is None:
        return None
    if group is not None:
        raise ValueError(
            "Ulysses sequence parallelism is active: each rank holds a slice of the sequence, so its last "
            "target is on the next rank. Pass `shift_labels` rolled over the whole sequence before slicing "
            "instead of `labels`."
        )
    return shift_labels_for_packed(labels, position_ids, ignore_index)


@can_return_tuple
def falcon_h1_lce_forward(
    self,
    input_ids: torch.LongTensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.LongTensor | None = None,
    past_key_values=None,
    inputs_embeds: torch.FloatTensor | None = None,
    labels: torch.LongTensor | None = None,
    use_cache: bool | None = None,
    logits_to_keep: int | torch.Tensor = 0,
    skip_logits: bool | None = None,
    shift_labels: torch.LongTensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    **kwargs,
) -> CausalLMOutputWithPast:
    outputs = self.model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=past_key_values,
        inputs_embeds=inputs_embeds,
        use_cache=use_cache,
        **kwargs,
    )
    hidden_states = outputs[0]
    slice_indices = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
    kept_hidden_states = hidden_states[:, slice_indices, :]

    has_targets = labels is not None or shift_labels is not None
    if skip_logits is None:
        skip_logits = self.training and has_targets
    if skip_logits and not has_targets:
        raise ValueError("skip_logits=True needs `labels` or `shift_labels`: without them there is no loss")
    if has_targets and kept_hidden_states.shape[1] != hidden_states.shape[1]:
        raise ValueError("logits_to_keep must be 0 when computing a loss: every position needs its logits")

    group = ulysses_group() if has_targets else None
    targets = _targets(labels, shift_labels, position_ids, ignore_index, group)
    multiplier = self.model.lm_head_multiplier
    logits = loss = None
    if skip_logits:
        loss = falcon_h1_fused_linear_cross_entropy(
            kept_hidden_states, self.lm_head.weight, multiplier, targets, num_items_in_batch, ignore_index, group
        )
    else:
        logits = self.lm_head(kept_hidden_states) * multiplier
        if targets is not None:
            loss = falcon_h1_logits_cross_entropy(logits, targets, num_items_in_batch, ignore_index, group)

    return CausalLMOutputWithPast(
        loss=loss,
        logits=logits,
        past_key_values=outputs.past_key_values,
        hidden_states=outputs.hidden_states,
        attentions=outputs.attentions,
    )


def falcon_h1_logits_cross_entropy(
    logits: torch.Tensor,
    shift_labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None,
    ignore_index: int,
    group,
) -> torch.Tensor:
    """The same loss as the fused branch, from materialised logits (evaluation, ``skip_logits=False``)."""
    targets = shift_labels.reshape(-1).to(logits.device)
    total = torch.nn.functional.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets, ignore_index=ignore_index, reduction="sum"
    )
    if num_items_in_batch is None:
        num_items_in_batch = token_count(targets, ignore_index, group)
    elif torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
