"""FalconH1Mixer forward for packed sequences, head-parallel under Ulysses SP.

The layout follows Megatron-LM's ``mamba_context_parallel``: the in_proj (and the
µP ``mup_vector``) run on this rank's sequence shard; x and dt are exchanged
all-to-all (gather the sequence, scatter the SSM heads); B and C are all-gathered
(they are shared by all heads of a group, and small); the conv weights, ``A_log``,
``D`` and ``dt_bias`` are sliced to this rank's heads; the conv and the scan run on
the full sequence for the local heads; y goes back all-to-all (gather heads, scatter
the sequence) *before* the gated RMSNorm, whose groups span heads of several ranks.
The gate z is only used by that norm, which runs sequence-local: z never moves.

Submodules are called through ``module(...)`` (``in_proj``, ``norm``, ``out_proj``),
so module swaps by other patches (Liger's gated RMSNorm) compose with this one.
"""

from __future__ import annotations

from typing import Any

from verl_falcon_plugin.models.falcon_h1 import cuda_path, ulysses
from verl_falcon_plugin.models.falcon_h1.boundaries import PackedSequences
from verl_falcon_plugin.models.falcon_h1.varlen_conv import causal_conv1d_varlen
from verl_falcon_plugin.models.falcon_h1.varlen_ssd import ssd_scan_varlen
from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")
F = torch.nn.functional


def _local_heads(mixer: Any, sp_size: int, sp_rank: int) -> slice:
    if mixer.num_heads % sp_size:
        raise ValueError(
            f"mamba_n_heads={mixer.num_heads} is not divisible by ulysses_sp_size={sp_size}: "
            "the Falcon-H1 mixer splits its SSM heads across the sequence-parallel ranks"
        )
    per_rank = mixer.num_heads // sp_size
    return slice(sp_rank * per_rank, (sp_rank + 1) * per_rank)


def _local_conv_params(mixer: Any, heads: slice) -> tuple["torch.Tensor", "torch.Tensor | None"]:
    """Conv weight (channels, K) and bias for this rank's x channels followed by all B/C channels."""
    weight = mixer.conv1d.weight.squeeze(1)
    bias = mixer.conv1d.bias
    x_channels = slice(heads.start * mixer.head_dim, heads.stop * mixer.head_dim)
    bc_channels = slice(mixer.intermediate_size, mixer.conv_dim)
    weight = torch.cat([weight[x_channels], weight[bc_channels]])
    if bias is not None:
        bias = torch.cat([bias[x_channels], bias[bc_channels]])
    return weight, bias


def packed_mixer_forward(mixer: Any, hidden_states: "torch.Tensor", packed: PackedSequences) -> "torch.Tensor":
    """The mixer's output for this rank's tokens (batch, local_len, hidden), sequences kept apart."""
    dtype = hidden_states.dtype
    batch = hidden_states.shape[0]
    group, sp_size = packed.group, packed.sp_size
    heads = _local_heads(mixer, sp_size, packed.sp_rank)
    group_state = mixer.n_groups * mixer.ssm_state_size

    projected = mixer.in_proj(hidden_states * mixer.ssm_in_multiplier) * mixer.mup_vector
    gate, x, B, C, dt = projected.split(
        [mixer.intermediate_size, mixer.intermediate_size, group_state, group_state, mixer.num_heads], dim=-1
    )
    if sp_size > 1:
        x = x.reshape(batch, -1, mixer.num_heads, mixer.head_dim)
        x = ulysses.seq_to_heads(x, seq_dim=1, head_dim=2, group=group).flatten(2)
        dt = ulysses.seq_to_heads(dt, seq_dim=1, head_dim=2, group=group)
        B = ulysses.gather_seq(B, seq_dim=1, group=group)
        C = ulysses.gather_seq(C, seq_dim=1, group=group)

    conv_weight, conv_bias = _local_conv_params(mixer, heads)
    xBC = torch.cat([x, B, C], dim=-1)
    if cuda_path.conv_usable(xBC, conv_weight, conv_bias):
        xBC = cuda_path.conv1d(xBC, conv_weight, conv_bias, packed.seq_idx, mixer.activation)
    else:
        xBC = causal_conv1d_varlen(xBC, conv_weight, conv_bias, packed.seq_idx, mixer.activation)
    local_channels = x.shape[-1]
    x, B, C = xBC.split([local_channels, group_state, group_state], dim=-1)

    dt = F.softplus(dt + mixer.dt_bias[heads])
    dt = torch.clamp(dt, mixer.time_step_limit[0], mixer.time_step_limit[1])
    A = -torch.exp(mixer.A_log[heads].float())
    x = x.reshape(batch, x.shape[1], -1, mixer.head_dim)
    B = B.reshape(batch, B.shape[1], mixer.n_groups, mixer.ssm_state_size)
    C = C.reshape(batch, C.shape[1], mixer.n_groups, mixer.ssm_state_size)
    heads_per_group = mixer.num_heads // mixer.n_groups
    if cuda_path.scan_usable(x):
        y = cuda_path.ssd_scan(x, dt, A, B, C, mixer.D[heads], packed.seq_idx, mixer.chunk_size, heads, heads_per_group)
    else:
        head_group = torch.arange(heads.start, heads.stop, device=x.device) // heads_per_group
        y = ssd_scan_varlen(x, dt, A, B, C, mixer.D[heads], packed.seq_idx, mixer.chunk_size, head_group)

    if sp_size > 1:
        y = ulysses.heads_to_seq(y, seq_dim=1, head_dim=2, group=group)
    y = y.flatten(2)
    if mixer.mamba_rms_norm:
        y = mixer.norm(y, gate)
    else:
        y = y * F.silu(gate)
    return mixer.out_proj(y.to(dtype))
