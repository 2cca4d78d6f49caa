"""Chunked SSD (Mamba2) scan over packed sequences, with the state reset at every sequence start.

The recurrence, per head, is ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t`` and
``y_t = C_t h_t + D x_t``, with ``h`` reset to 0 where a sequence starts. This is
the chunked (state-space-duality) evaluation that transformers' ``torch_forward``
uses, plus three same-sequence masks, as in mamba_ssm's ``seq_idx`` kernels:

1. inside a chunk, token ``j`` feeds token ``i`` only if both are in one sequence;
2. a chunk's end state accumulates only tokens of the sequence the chunk ends in,
   and is carried to a later chunk only if that one ends in the same sequence;
3. the state entering a chunk reaches token ``i`` only if ``i`` continues its sequence.

Masks are applied with ``masked_fill`` before ``exp`` or by multiplication, never
by ``-inf`` arithmetic, so no NaN appears in the forward or the backward.
Everything runs in float32, like transformers' reference.
"""

from __future__ import annotations

from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")
F = torch.nn.functional


def _segment_sum(x: "torch.Tensor") -> "torch.Tensor":
    """(..., T) -> (..., T, T) with ``out[..., i, j] = sum(x[..., j+1 : i+1])`` for ``j <= i`` (0 above)."""
    size = x.shape[-1]
    expanded = x[..., None].expand(*x.shape, size)
    strictly_lower = torch.tril(torch.ones(size, size, dtype=torch.bool, device=x.device), diagonal=-1)
    return torch.cumsum(expanded.masked_fill(~strictly_lower, 0), dim=-2)


def _masked_decay(log_decay: "torch.Tensor", keep: "torch.Tensor") -> "torch.Tensor":
    """``exp(segment_sum(log_decay))`` where ``keep`` (and causality) allows it, exactly 0 elsewhere."""
    size = log_decay.shape[-1]
    causal = torch.tril(torch.ones(size, size, dtype=torch.bool, device=log_decay.device))
    return torch.exp(_segment_sum(log_decay).masked_fill(~(keep & causal), -torch.inf))


def _pad_to_chunks(t: "torch.Tensor", pad: int, value: float = 0.0) -> "torch.Tensor":
    if pad == 0:
        return t
    widths = [0, 0] * (t.dim() - 2) + [0, pad]
    return F.pad(t, widths, value=value)


def ssd_scan_varlen(
    x: "torch.Tensor",
    dt: "torch.Tensor",
    A: "torch.Tensor",
    B: "torch.Tensor",
    C: "torch.Tensor",
    D: "torch.Tensor",
    seq_idx: "torch.Tensor",
    chunk_size: int,
    head_group: "torch.Tensor | None" = None,
) -> "torch.Tensor":
    """Scan packed sequences; returns y with the shape of ``x``.

    x: (b, l, h, p); dt: (b, l, h), already softplus'ed and clamped; A: (h,), negative;
    B, C: (b, l, g, n); D: (h,); seq_idx: (b, l), non-decreasing per row;
    head_group: (h,) the B/C group of each head (default: ``h // (H / g)``).
    """
    batch, seq_len, heads, head_dim = x.shape
    groups = B.shape[2]
    if head_group is None:
        head_group = torch.arange(heads, device=x.device) // (heads // groups)
    x, dt, A, B, C, D = (t.float() for t in (x, dt, A, B, C, D))
    D_residual = x * D[:, None]

    pad = (chunk_size - seq_len % chunk_size) % chunk_size
    # Padded tokens have dt = 0 (no input, no decay) and extend the last sequence.
    x_dt = _pad_to_chunks(x * dt[..., None], pad)
    log_decay = _pad_to_chunks(dt * A, pad)
    B, C = _pad_to_chunks(B, pad), _pad_to_chunks(C, pad)
    seq = torch.cat([seq_idx, seq_idx[:, -1:].expand(batch, pad)], dim=1) if pad else seq_idx
    chunks = (seq_len + pad) // chunk_size

    def chunked(t):
        return t.reshape(batch, chunks, chunk_size, *t.shape[2:])

    x_dt, B, C, seq = chunked(x_dt), chunked(B), chunked(C), chunked(seq)
    log_decay = chunked(log_decay).permute(0, 3, 1, 2)  # (b, h, c, s)
    cum_decay = torch.cumsum(log_decay, dim=-1)
    B_heads, C_heads = B[:, :, :, head_group], C[:, :, :, head_group]  # (b, c, s, h, n)

    # 1. Within each chunk: an attention-like product, masked to one sequence.
    same_seq = (seq[..., :, None] == seq[..., None, :])[:, None]  # (b, 1, c, s, s)
    intra = _masked_decay(log_decay, same_seq)  # (b, h, c, i, j)
    scores = torch.einsum("bcign,bcjgn->bcijg", C, B)[..., head_group]  # (b, c, i, j, h)
    y_diag = torch.einsum("bcijh,bhcij,bcjhp->bcihp", scores, intra, x_dt)

    # 2. Each chunk's end state, from the tokens of the sequence the chunk ends in.
    chunk_seq = seq[:, :, -1]  # (b, c)
    in_last_seq = (seq == chunk_seq[..., None]).to(x_dt.dtype)  # (b, c, s)
    decay_to_end = torch.exp(cum_decay[..., -1:] - cum_decay) * in_last_seq[:, None]  # (b, h, c, s)
    chunk_states = torch.einsum("bcshn,bhcs,bcshp->bchpn", B_heads, decay_to_end, x_dt)

    # 3. States carried across chunks, only between chunks ending in the same sequence.
    chunk_states = torch.cat([torch.zeros_like(chunk_states[:, :1]), chunk_states], dim=1)
    padded_seq = torch.cat([chunk_seq[:, :1], chunk_seq], dim=1)  # the zero initial state: any sequence
    same_chunk_seq = (padded_seq[:, :, None] == padded_seq[:, None, :])[:, None]  # (b, 1, c+1, c+1)
    inter = _masked_decay(F.pad(cum_decay[..., -1], (1, 0)), same_chunk_seq)  # (b, h, c+1, c+1)
    entering = torch.einsum("bhzc,bchpn->bzhpn", inter, chunk_states)[:, :-1]  # state entering each chunk

    # 4. The entering state's contribution, for tokens that continue its sequence.
    continues = (seq == padded_seq[:, :-1, None]).to(x_dt.dtype)  # (b, c, s)
    decay_from_start = torch.exp(cum_decay).permute(0, 2, 3, 1) * continues[..., None]  # (b, c, s, h)
    y_off = torch.einsum("bcshn,bchpn,bcsh->bcshp", C_heads, entering, decay_from_start)

    y = (y_diag + y_off).reshape(batch, chunks * chunk_size, heads, head_dim)[:, :seq_len]
    return y + D_residual
