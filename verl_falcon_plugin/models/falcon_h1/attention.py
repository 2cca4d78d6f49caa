"""FalconH1Attention forward for packed sequences, with Ulysses heads<->sequence all-to-all.

RoPE is applied on this rank's tokens (their own ``position_ids``), then q/k/v are
exchanged all-to-all (gather the sequence, scatter the heads; KV heads are repeated
first when sp exceeds them), attention runs over the full packed sequence for the
local heads, and the output goes back all-to-all before ``o_proj``.

Sequences are kept apart by
- flash-attention (``flash_attention_2``/``_3``): varlen ``cu_seq_lens_q/k`` and
  ``max_length_q/k`` computed from the gathered boundaries, and *no* ``position_ids``
  — verl's generic ``_ulysses_flash_attention_forward`` (installed by its
  ``apply_monkey_patch``) only all-to-alls when it sees ``position_ids``, so it
  passes straight through instead of exchanging the heads a second time;
- ``sdpa`` / ``eager``: a block-diagonal causal mask built from the same boundaries,
  evaluated per block of queries against only the keys from the start of the block's
  first sequence (a loop over ``ceil(len / QUERY_BLOCK)`` blocks, not over sequences):
  a dense mask over a packed row costs O(total²) while the sequences are short.
"""

from __future__ import annotations

import sys
from typing import Any

from verl_falcon_plugin.models.falcon_h1 import ulysses
from verl_falcon_plugin.models.falcon_h1.boundaries import PackedSequences
from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")

_FLASH = ("flash_attention_2", "flash_attention_3")
_MASKED = ("sdpa", "eager")
QUERY_BLOCK = 256


class _LocalHeads:
    """The attention module as seen by the attention interface: with this rank's KV group size."""

    def __init__(self, module: Any, num_key_value_groups: int) -> None:
        self._module = module
        self.num_key_value_groups = num_key_value_groups

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def _repeat_kv_heads(t: "torch.Tensor", repeats: int) -> "torch.Tensor":
    """(b, s, kv, d) -> (b, s, kv * repeats, d), each KV head repeated next to itself (GQA order)."""
    return t if repeats == 1 else t.repeat_interleave(repeats, dim=2)


def block_causal_mask(
    query_seq: "torch.Tensor", key_seq: "torch.Tensor", implementation: str, dtype: "torch.dtype"
) -> "torch.Tensor":
    """(b, 1, q, k) mask for queries that are the *last* q of the k keys: query i sees key j iff
    ``j <= k - q + i`` and both are in one sequence. Boolean for sdpa, additive for eager."""
    q_len, k_len = query_seq.shape[-1], key_seq.shape[-1]
    query_pos = torch.arange(k_len - q_len, k_len, device=query_seq.device)
    causal = query_pos[:, None] >= torch.arange(k_len, device=query_seq.device)[None, :]
    allowed = ((query_seq[:, :, None] == key_seq[:, None, :]) & causal)[:, None]
    if implementation == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def _sequence_starts(seq_idx: "torch.Tensor") -> "torch.Tensor":
    """(b, l): position of the first token of each token's sequence."""
    positions = torch.arange(seq_idx.shape[-1], device=seq_idx.device).expand_as(seq_idx)
    is_start = torch.ones_like(seq_idx, dtype=torch.bool)
    is_start[:, 1:] = seq_idx[:, 1:] != seq_idx[:, :-1]
    return torch.cummax(torch.where(is_start, positions, 0), dim=-1).values


def _masked_attention(interface, module, query, key, value, seq_idx, implementation, common) -> "torch.Tensor":
    """Block-diagonal causal attention, query block by query block; q/k/v (b, heads, l, d) -> (b, l, heads, d)."""
    length = query.shape[2]
    block_starts = list(range(0, length, QUERY_BLOCK))
    first_keys = _sequence_starts(seq_idx)[:, block_starts].min(dim=0).values.tolist()
    outputs = []
    for start, first_key in zip(block_starts, first_keys):
        end = min(start + QUERY_BLOCK, length)
        mask = block_causal_mask(seq_idx[:, start:end], seq_idx[:, first_key:end], implementation, query.dtype)
        keys = slice(first_key, end)
        output, _ = interface(module, query[:, :, start:end], key[:, :, keys], value[:, :, keys], mask, **common)
        outputs.append(output)
    return torch.cat(outputs, dim=1)


def _attention_interface(module: Any):
    implementation = module.config._attn_implementation
    modeling = sys.modules[type(module).__module__]
    if implementation not in _FLASH + _MASKED:
        raise NotImplementedError(
            f"Falcon-H1 packed sequences support attn_implementation in {_FLASH + _MASKED}, "
            f"not {implementation!r}: set attn_implementation to one of them"
        )
    if implementation == "eager":
        return implementation, modeling.eager_attention_forward
    return implementation, modeling.ALL_ATTENTION_FUNCTIONS[implementation]


def packed_attention_forward(
    module: Any,
    hidden_states: "torch.Tensor",
    position_embeddings: tuple["torch.Tensor", "torch.Tensor"],
    packed: PackedSequences,
) -> "torch.Tensor":
    """Attention output for this rank's tokens (batch, local_len, hidden)."""
    modeling = sys.modules[type(module).__module__]
    batch, local_len = hidden_states.shape[:2]
    shape = (batch, local_len, -1, module.head_dim)
    query = module.q_proj(hidden_states).view(shape).transpose(1, 2)
    key = module.k_proj(hidden_states).view(shape).transpose(1, 2) * module.key_multiplier
    value = module.v_proj(hidden_states).view(shape).transpose(1, 2)
    cos, sin = position_embeddings
    # Looked up at call time so that Liger's RoPE (which swaps the module attribute) is used.
    query, key = modeling.apply_rotary_pos_emb(query, key, cos, sin)
    query, key, value = (t.transpose(1, 2) for t in (query, key, value))  # (b, s, heads, d)

    group, sp_size = packed.group, packed.sp_size
    if sp_size > 1:
        kv_heads = key.shape[2]
        repeats = max(sp_size // kv_heads, 1)
        key, value = _repeat_kv_heads(key, repeats), _repeat_kv_heads(value, repeats)
        query, key, value = (ulysses.seq_to_heads(t, seq_dim=1, head_dim=2, group=group) for t in (query, key, value))

    implementation, interface = _attention_interface(module)
    local = _LocalHeads(module, query.shape[2] // key.shape[2])
    query, key, value = (t.transpose(1, 2) for t in (query, key, value))  # (b, heads, s, d)
    common = dict(dropout=0.0 if not module.training else module.attention_dropout, scaling=module.scaling)
    if implementation in _FLASH:
        output, _ = interface(local, query, key, value, None, **common, **packed.flash_varlen_kwargs())
    else:
        output = _masked_attention(interface, local, query, key, value, packed.seq_idx, implementation, common)
    # output: (b, s, heads, d)
    if sp_size > 1:
        output = ulysses.heads_to_seq(output, seq_dim=1, head_dim=2, group=group)
    output = output.reshape(batch, local_len, -1).contiguous()
    return module.o_proj(output)
