"""FalconH1DecoderLayer forward for packed sequences.

Per layer, the boundaries of the full packed sequence are computed from the
``position_ids`` the layer receives (all-gathered over the SP group: one small
collective per layer, like verl's own flash-attention wrapper). They travel as an
argument, not a global, so activation checkpointing recomputes the same function.
The block is HF's: ``x + mamba(h) * ssm_out + attn(h * attn_in) * attn_out`` with
``h = input_layernorm(x)``, then the MLP; every submodule is called as a module.
"""

from __future__ import annotations

from typing import Any

from verl_falcon_plugin.models.falcon_h1 import ulysses
from verl_falcon_plugin.models.falcon_h1.boundaries import PackedSequences, packed_sequences
from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")


def is_packed_call(
    position_ids: Any, past_key_values: Any, mamba_attention_mask: Any, position_embeddings: Any
) -> bool:
    """A training-style forward: no cache and no padding mask, sequences marked by position_ids."""
    return (
        past_key_values is None
        and mamba_attention_mask is None
        and position_ids is not None
        and position_embeddings is not None
    )


def layer_boundaries(hidden_states: "torch.Tensor", position_ids: "torch.Tensor") -> PackedSequences:
    group = ulysses.sequence_parallel_group()
    return packed_sequences(position_ids, hidden_states.shape[0], group)


def packed_layer_forward(
    layer: Any,
    hidden_states: "torch.Tensor",
    *,
    position_ids: "torch.Tensor",
    position_embeddings: tuple["torch.Tensor", "torch.Tensor"],
) -> tuple["torch.Tensor"]:
    packed = layer_boundaries(hidden_states, position_ids)
    residual = hidden_states
    hidden_states = layer.input_layernorm(hidden_states)

    mamba_hidden_states = layer.mamba(hidden_states, packed=packed) * layer.ssm_out_multiplier
    attention_hidden_states, _ = layer.self_attn(
        hidden_states=hidden_states * layer.attention_in_multiplier,
        position_embeddings=position_embeddings,
        attention_mask=None,
        packed=packed,
    )
    attention_hidden_states = attention_hidden_states * layer.attn_out_multiplier

    hidden_states = residual + (mamba_hidden_states + attention_hidden_states)
    residual = hidden_states
    hidden_states = layer.feed_forward(layer.pre_ff_layernorm(hidden_states))
    return (residual + hidden_states,)
