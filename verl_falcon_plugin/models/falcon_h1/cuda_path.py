"""GPU path: mamba_ssm's chunked scan and causal_conv1d, both with ``seq_idx`` resets.

Used automatically for CUDA tensors when both packages import (``pip install
'verl-falcon-plugin[cuda]'``); set ``FALCON_H1R_TORCH_SCAN=1`` to force the torch
path (``varlen_conv`` / ``varlen_ssd``), e.g. to compare the two on a GPU.

NOT RUN IN THIS PROJECT'S CI: the project's machines have no GPU and these packages
only build against CUDA torch. The calls are written against the upstream signatures
(read from the sources, not guessed):

- ``causal_conv1d.causal_conv1d_fn(x, weight, bias=None, seq_idx=None,
  initial_states=None, return_final_states=False, final_states_out=None,
  activation=None)`` with x (batch, dim, seqlen), weight (dim, width), seq_idx
  (batch, seqlen) int32. The kernel's seq_idx support needs the channel-last
  layout (``x.stride(1) == 1``), which ``(b, l, d).transpose(1, 2)`` gives.
- ``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined(x, dt, A, B, C,
  chunk_size, D=None, z=None, dt_bias=None, initial_states=None, seq_idx=None,
  cu_seqlens=None, dt_softplus=False, dt_limit=(0.0, inf),
  return_final_states=False, return_varlen_states=False)`` with x (b, l, h, p),
  dt (b, l, h), A (h,), B/C (b, l, g, n), seq_idx (b, l) int32. The kernel maps
  head ``h`` to group ``h // (nheads // ngroups)``.

The preflight check ``falcon_h1.packed`` compares this path with unpatched HF when
it runs on a GPU machine.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Any, Callable

from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")


@functools.cache
def _kernels() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    try:
        conv = importlib.import_module("causal_conv1d").causal_conv1d_fn
        scan = importlib.import_module("mamba_ssm.ops.triton.ssd_combined").mamba_chunk_scan_combined
    except (ImportError, AttributeError):
        return None
    return conv, scan


def usable(t: "torch.Tensor") -> bool:
    """True when ``t`` lives on a CUDA device and the mamba_ssm / causal_conv1d kernels import."""
    if not t.is_cuda or os.environ.get("FALCON_H1R_TORCH_SCAN", "0") == "1":
        return False
    return _kernels() is not None


def conv1d(
    x: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None", seq_idx: "torch.Tensor", activation: str
) -> "torch.Tensor":
    """x: (batch, seq, channels) -> same shape; see ``varlen_conv.causal_conv1d_varlen``."""
    conv, _ = _kernels()
    out = conv(
        x.transpose(1, 2),
        weight.contiguous(),
        bias,
        seq_idx=seq_idx.to(torch.int32).contiguous(),
        activation=activation,
    )
    return out.transpose(1, 2)


def _kernel_groups(
    B: "torch.Tensor", C: "torch.Tensor", head_group: "torch.Tensor"
) -> tuple["torch.Tensor", "torch.Tensor"]:
    """B/C laid out so that the kernel's ``h // (nheads // ngroups)`` maps each local head to its group.

    This rank's heads are contiguous, so their groups come in runs: equal runs of
    consecutive groups are a slice of B/C; otherwise each head gets its group's copy.
    """
    groups, counts = torch.unique_consecutive(head_group, return_counts=True)
    if bool((groups.diff() == 1).all()) and bool((counts == counts[0]).all()):
        first, stop = int(groups[0]), int(groups[-1]) + 1
        return B[:, :, first:stop], C[:, :, first:stop]
    return B[:, :, head_group], C[:, :, head_group]


def ssd_scan(
    x: "torch.Tensor",
    dt: "torch.Tensor",
    A: "torch.Tensor",
    B: "torch.Tensor",
    C: "torch.Tensor",
    D: "torch.Tensor",
    seq_idx: "torch.Tensor",
    chunk_size: int,
    head_group: "torch.Tensor",
) -> "torch.Tensor":
    """Same contract as ``varlen_ssd.ssd_scan_varlen`` (dt already softplus'ed and clamped)."""
    _, scan = _kernels()
    B, C = (t.contiguous() for t in _kernel_groups(B, C, head_group))
    x, dt = x.contiguous(), dt.contiguous()
    return scan(x, dt, A, B, C, chunk_size, D=D, seq_idx=seq_idx.to(torch.int32).contiguous())
