"""Where each packed sequence starts, derived from ``position_ids``.

verl's remove-padding path packs a micro-batch into one row and marks boundaries
only by ``position_ids`` restarting at 0 (its Ulysses padding is a last sequence
whose positions also start at 0). This is the same rule as transformers'
``prepare_fa_kwargs_from_position_ids``, so attention, the conv and the scan agree
with flash-attention's varlen split. The first token always starts a sequence.

Under sequence parallelism every rank holds a slice of ``position_ids``; the
boundaries are computed on the all-gathered full sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verl_falcon_plugin.models.falcon_h1 import ulysses
from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")


def seq_idx_from_position_ids(position_ids: "torch.Tensor") -> "torch.Tensor":
    """(batch, seq) int32: index of the packed sequence each token belongs to, per row."""
    if position_ids.dim() == 1:
        position_ids = position_ids.unsqueeze(0)
    if position_ids.dim() != 2:
        raise ValueError(
            f"position_ids must have shape (batch, seq) for Falcon-H1 packed sequences, got {tuple(position_ids.shape)}"
        )
    starts = position_ids == 0
    starts[:, 0] = True
    return (torch.cumsum(starts, dim=-1, dtype=torch.int32) - 1).to(torch.int32)


def cu_seqlens_from_seq_idx(seq_idx: "torch.Tensor") -> "torch.Tensor":
    """(num_sequences + 1,) int32 cumulative lengths of a single packed row."""
    if seq_idx.shape[0] != 1:
        raise ValueError(f"cu_seqlens describe one packed row; got a batch of {seq_idx.shape[0]} rows")
    row = seq_idx[0]
    starts = torch.nonzero(torch.diff(row, prepend=row[:1] - 1)).flatten()
    total = torch.tensor([row.numel()], device=row.device, dtype=starts.dtype)
    return torch.cat([starts, total]).to(torch.int32)


@dataclass(frozen=True)
class PackedSequences:
    """Sequence boundaries of the *full* packed sequence, and the SP group it is split over.

    ``seq_idx`` has shape (batch, total_len). When ``group`` is set, this rank holds
    tokens ``[rank * local_len, (rank + 1) * local_len)`` of it.
    """

    seq_idx: "torch.Tensor"
    group: Any = None

    @property
    def sp_size(self) -> int:
        return ulysses.group_size(self.group)

    @property
    def sp_rank(self) -> int:
        return ulysses.group_rank(self.group)

    @property
    def total_len(self) -> int:
        return self.seq_idx.shape[-1]

    @property
    def local_len(self) -> int:
        return self.total_len // self.sp_size

    def flash_varlen_kwargs(self) -> dict[str, Any]:
        """``cu_seq_lens_q/k`` and ``max_length_q/k`` for transformers' ``_flash_attention_forward``."""
        cu_seqlens = cu_seqlens_from_seq_idx(self.seq_idx)
        max_length = int(cu_seqlens.diff().max().item())
        return dict(
            cu_seq_lens_q=cu_seqlens, cu_seq_lens_k=cu_seqlens, max_length_q=max_length, max_length_k=max_length
        )


def packed_sequences(position_ids: "torch.Tensor", batch_size: int, group: Any = None) -> PackedSequences:
    """Boundaries for this forward: all-gathers ``position_ids`` over ``group`` when it is set."""
    if position_ids.dim() == 1:
        position_ids = position_ids.unsqueeze(0)
    if position_ids.shape[0] != batch_size:
        position_ids = position_ids.expand(batch_size, -1)
    if group is not None and ulysses.group_size(group) > 1:
        if batch_size != 1:
            raise ValueError(
                f"Ulysses sequence parallelism packs the micro-batch into one row; got input batch size {batch_size}. "
                "Use verl's remove-padding path (use_remove_padding=True)."
            )
        position_ids = ulysses.gather_seq_no_grad(position_ids, seq_dim=-1, group=group)
    return PackedSequences(seq_idx_from_position_ids(position_ids), group)
