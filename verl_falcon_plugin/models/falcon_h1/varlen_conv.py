"""Depthwise causal conv1d over packed sequences: no tap reaches into the previous sequence.

This is what ``causal_conv1d_fn(..., seq_idx=...)`` computes on GPU. Here it is the
sum of the K shifted copies of the input (K = ``mamba_d_conv``, 4), each tap zeroed
where its source token belongs to another sequence than the output token: no loop
over sequences, one over the K taps.
"""

from __future__ import annotations

from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")
F = torch.nn.functional


def causal_conv1d_varlen(
    x: "torch.Tensor",
    weight: "torch.Tensor",
    bias: "torch.Tensor | None",
    seq_idx: "torch.Tensor",
    activation: str | None = "silu",
) -> "torch.Tensor":
    """x: (batch, seq, channels); weight: (channels, K); bias: (channels,); seq_idx: (batch, seq).

    Returns (batch, seq, channels): ``act(bias + sum_k weight[:, k] * x[t - K + 1 + k])``
    over the taps in the same sequence as ``t`` — HF's ``conv1d(padding=K-1)[..., :seq]``
    applied to each sequence separately.
    """
    if activation not in (None, "silu", "swish"):
        raise ValueError(f"activation must be None, 'silu' or 'swish' (the mixer's hidden_act); got {activation!r}")
    width = weight.shape[-1]
    seq_len = x.shape[1]
    padded = F.pad(x, (0, 0, width - 1, 0))
    padded_idx = F.pad(seq_idx, (width - 1, 0), value=-1)
    out = x.new_zeros(x.shape) if bias is None else bias.to(x.dtype).expand_as(x)
    for tap in range(width):
        source = padded[:, tap : tap + seq_len]
        same_sequence = (padded_idx[:, tap : tap + seq_len] == seq_idx).unsqueeze(-1)
        out = out + torch.where(same_sequence, source, 0.0) * weight[:, tap]
    return F.silu(out) if activation is not None else out
