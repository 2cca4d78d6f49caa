"""Negative controls of the Ulysses check: what verl 0.9.1 runs for Falcon-H1 *without* this plugin.

verl's ``apply_monkey_patch`` (``verl/models/transformers/monkey_patch.py``) has no Falcon-H1
entry. For any model it replaces transformers' ``_flash_attention_forward`` with its generic
``_ulysses_flash_attention_forward``: q/k/v go all-to-all (full sequence, a slice of the heads),
``position_ids`` are all-gathered, and flash-attn's varlen kernel splits the packed row where
the positions restart at 0. So under SP=n attention is exact on packed sequences, and the
Mamba2 mixer, which verl does not touch, runs on this rank's 1/n shard of the packed row.

- :func:`verl_generic_sp_logits` is exactly that: transformers' Falcon-H1, unpatched,
  ``flash_attention_2`` behind verl's own wrapper (a CPU stand-in for the varlen kernel),
  inputs padded and sliced by verl's ``ulysses_pad_and_slice_inputs`` and logits gathered by its
  ``gather_outputs_and_unpad``. Its mixer is wrong twice: it ignores the packing, and it sees
  only its shard.
- :func:`shard_local_mixer_sp_logits` is the same with a mixer that packs correctly (this
  plugin's varlen conv and scan, boundaries from the shard's own ``position_ids``) but is not
  head-parallel. What is left is the one error the head-parallel mixer removes: a sequence
  that began on an earlier shard restarts its conv and SSM state at the shard boundary. Its
  tokens there are wrong; every token whose sequence starts on its own shard is exact
  (:func:`started_on_earlier_shard` says which is which).
"""

from __future__ import annotations

import contextlib
import copy
import types
from typing import Any, Callable, Iterator

from verl_falcon_plugin.models.falcon_h1.equivalence import attend_per_sequence
from verl_falcon_plugin.requires import require

torch = require("torch", "the Falcon-H1 Ulysses negative controls")


def generic_flash_stand_in(
    query,
    key,
    value,
    attention_mask,
    query_length,
    is_causal=True,
    dropout=0.0,
    position_ids=None,
    softmax_scale=None,
    cu_seq_lens_q=None,
    cu_seq_lens_k=None,
    max_length_q=None,
    max_length_k=None,
    **kwargs,
):
    """transformers' packed flash path on CPU: sequences from ``cu_seq_lens_q``, else from ``position_ids``
    through transformers' own ``prepare_fa_kwargs_from_position_ids`` (what verl's wrapper relies on)."""
    if cu_seq_lens_q is None:
        from transformers.modeling_flash_attention_utils import prepare_fa_kwargs_from_position_ids

        if position_ids is None or position_ids.shape[-1] != query.shape[1]:
            raise AssertionError("packed flash attention needs the full sequence's position_ids (verl gathers them)")
        (cu_seq_lens_q, _), _ = prepare_fa_kwargs_from_position_ids(position_ids)
    return attend_per_sequence(query, key, value, cu_seq_lens_q, is_causal, softmax_scale)


@contextlib.contextmanager
def verl_generic_attention(model: Any, sp_size: int) -> Iterator[None]:
    """``model`` as verl 0.9.1 sets it up: ``apply_monkey_patch`` and ``flash_attention_2``."""
    from verl.models.transformers import monkey_patch

    monkey_patch.apply_monkey_patch(model, ulysses_sp_size=sp_size, use_remove_padding=True)
    patched = [name for name, module in model.named_modules() if "forward" in module.__dict__]
    if patched:  # e.g. this plugin's verl hook: the control would no longer be verl alone
        raise RuntimeError(f"verl's apply_monkey_patch changed Falcon-H1 modules {patched[:3]}: not verl alone")
    kernel, implementation = monkey_patch._flash_attention_forward, model.config._attn_implementation
    monkey_patch._flash_attention_forward = generic_flash_stand_in
    model.config._attn_implementation = "flash_attention_2"
    try:
        yield
    finally:
        monkey_patch._flash_attention_forward = kernel
        model.config._attn_implementation = implementation


def _sharded_logits(
    model: Any, input_ids, position_ids, group: Any, sp_size: int, prepare: Callable[[Any], None] | None = None
) -> "torch.Tensor":
    """verl's FSDP engine's SP forward: pad and slice, this rank's shard through ``model``, gather."""
    from verl.utils.ulysses import (
        gather_outputs_and_unpad,
        set_ulysses_sequence_parallel_group,
        ulysses_pad_and_slice_inputs,
    )

    set_ulysses_sequence_parallel_group(group)
    try:
        ids, pos, pad = ulysses_pad_and_slice_inputs(input_ids, position_ids_rmpad=position_ids, sp_size=sp_size)
        if prepare is not None:
            prepare(pos)
        with torch.no_grad():
            local = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        return gather_outputs_and_unpad(local, gather_dim=1, unpad_dim=1, padding_size=pad)
    finally:
        set_ulysses_sequence_parallel_group(None)


def verl_generic_sp_logits(reference: Any, input_ids, position_ids, group: Any, sp_size: int) -> "torch.Tensor":
    """What verl 0.9.1 computes for Falcon-H1 under Ulysses SP: generic attention patch, unpatched mixer."""
    model = copy.deepcopy(reference)
    with verl_generic_attention(model, sp_size):
        return _sharded_logits(model, input_ids, position_ids, group, sp_size)


def shard_local_mixer_sp_logits(reference: Any, input_ids, position_ids, group: Any, sp_size: int) -> "torch.Tensor":
    """verl's generic attention patch with a packing-correct mixer that is *not* head-parallel."""
    from transformers.models.falcon_h1.modeling_falcon_h1 import FalconH1Mixer

    from verl_falcon_plugin.models.falcon_h1.boundaries import packed_sequences
    from verl_falcon_plugin.models.falcon_h1.mixer import packed_mixer_forward

    model = copy.deepcopy(reference)
    mixers = [m for m in model.modules() if isinstance(m, FalconH1Mixer)]

    def shard_local(local_position_ids) -> None:
        packed = packed_sequences(local_position_ids, 1, group=None)  # this shard's boundaries, no SP group

        def forward(self, hidden_states, *args, **kwargs):
            return packed_mixer_forward(self, hidden_states, packed)

        for mixer in mixers:
            mixer.forward = types.MethodType(forward, mixer)

    with verl_generic_attention(model, sp_size):
        return _sharded_logits(model, input_ids, position_ids, group, sp_size, prepare=shard_local)


def started_on_earlier_shard(lengths, sp_size: int) -> "torch.Tensor":
    """(total,) bool: the token's sequence began on an earlier SP shard (verl pads the row to a multiple of sp)."""
    total = sum(lengths)
    local_len = -(-total // sp_size)
    starts = torch.repeat_interleave(torch.cumsum(torch.tensor([0, *lengths[:-1]]), 0), torch.tensor(lengths))
    tokens = torch.arange(total)
    return starts // local_len < tokens // local_len


def token_errors(actual: "torch.Tensor", expected: "torch.Tensor") -> "torch.Tensor":
    """(total,) per-token ``max|a - b|`` over the vocabulary, relative to ``max|expected|`` (as ``relative_error``)."""
    scale = expected.abs().max().clamp_min(1e-30)
    return ((actual - expected).abs().amax(dim=-1) / scale).flatten()
