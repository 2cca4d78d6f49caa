"""The packed conv1d and SSD scan against references we did not write (per-token loop, torch's conv1d).

Tolerances: fp32, 1e-5 relative on outputs and 1e-4 on gradients.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from verl_falcon_plugin.models.falcon_h1.boundaries import (  # noqa: E402
    cu_seqlens_from_seq_idx,
    seq_idx_from_position_ids,
)
from verl_falcon_plugin.models.falcon_h1.varlen_conv import causal_conv1d_varlen  # noqa: E402
from verl_falcon_plugin.models.falcon_h1.varlen_ssd import ssd_scan_varlen  # noqa: E402

F = torch.nn.functional
# length 1, lengths that are not multiples of the chunk (8), one longer than several chunks
LENGTHS = [5, 1, 8, 27, 3, 1]


def positions(lengths):
    return torch.cat([torch.arange(n) for n in lengths])[None]


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def naive_scan(x, dt, A, B, C, D, seq_idx, head_group):
    """The Mamba2 recurrence token by token, state reset at each sequence start (float64)."""
    batch, length, heads, head_dim = x.shape
    state = x.new_zeros(batch, heads, head_dim, B.shape[-1])
    ys = []
    for t in range(length):
        starts = (seq_idx[:, t] != seq_idx[:, t - 1]) if t else torch.ones(batch, dtype=torch.bool)
        state = torch.where(starts[:, None, None, None], torch.zeros_like(state), state)
        decay = torch.exp(dt[:, t] * A)[..., None, None]
        state = state * decay + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * B[:, t, head_group][:, :, None, :]
        ys.append((state * C[:, t, head_group][:, :, None, :]).sum(-1) + D[:, None] * x[:, t])
    return torch.stack(ys, dim=1)


def scan_inputs(lengths, heads=4, head_dim=3, groups=2, state=5, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    length = sum(lengths)
    x = torch.randn(batch, length, heads, head_dim, generator=g, dtype=torch.float64)
    dt = torch.rand(batch, length, heads, generator=g, dtype=torch.float64) * 0.5
    A = -torch.rand(heads, generator=g, dtype=torch.float64) * 2 - 0.1
    B = torch.randn(batch, length, groups, state, generator=g, dtype=torch.float64)
    C = torch.randn(batch, length, groups, state, generator=g, dtype=torch.float64)
    D = torch.randn(heads, generator=g, dtype=torch.float64)
    return x, dt, A, B, C, D


def test_seq_idx_and_cu_seqlens_from_position_ids():
    pos = positions([3, 1, 2])
    assert seq_idx_from_position_ids(pos).tolist() == [[0, 0, 0, 1, 2, 2]]
    assert cu_seqlens_from_seq_idx(seq_idx_from_position_ids(pos)).tolist() == [0, 3, 4, 6]
    # a row that does not start at position 0 still starts a sequence at token 0
    assert seq_idx_from_position_ids(torch.tensor([[4, 5, 0, 1]])).tolist() == [[0, 0, 1, 1]]


@pytest.mark.parametrize("chunk_size", [8, 4])
def test_scan_matches_per_token_recurrence_with_resets(chunk_size):
    x, dt, A, B, C, D = scan_inputs(LENGTHS)
    seq_idx = seq_idx_from_position_ids(positions(LENGTHS))
    head_group = torch.arange(4) // 2
    y = ssd_scan_varlen(x, dt, A, B, C, D, seq_idx, chunk_size, head_group)
    expected = naive_scan(x, dt, A, B, C, D, seq_idx, head_group)
    assert rel(y.double(), expected) <= 1e-5
    # without resets the same inputs give another function: the masks matter
    no_resets = ssd_scan_varlen(x, dt, A, B, C, D, torch.zeros_like(seq_idx), chunk_size, head_group)
    assert rel(no_resets.double(), expected) > 1e-2


def test_scan_on_a_batch_of_rows():
    lengths = [6, 11, 3]
    x, dt, A, B, C, D = scan_inputs(lengths, batch=2)
    seq_idx = torch.cat([seq_idx_from_position_ids(positions(lengths)), seq_idx_from_position_ids(positions([20]))])
    head_group = torch.arange(4) // 2
    y = ssd_scan_varlen(x, dt, A, B, C, D, seq_idx, 8, head_group)
    assert rel(y.double(), naive_scan(x, dt, A, B, C, D, seq_idx, head_group)) <= 1e-5


def test_scan_gradients_match_the_recurrence_and_are_finite():
    lengths = [1, 9, 17, 2]
    inputs = [t.requires_grad_() for t in scan_inputs(lengths)]
    seq_idx = seq_idx_from_position_ids(positions(lengths))
    head_group = torch.arange(4) // 2
    weights = torch.randn(1, sum(lengths), 4, 3, dtype=torch.float64)
    (ssd_scan_varlen(*inputs, seq_idx, 8, head_group).double() * weights).sum().backward()
    ours = [t.grad.clone() for t in inputs]
    for t in inputs:
        t.grad = None
    (naive_scan(*inputs, seq_idx, head_group) * weights).sum().backward()
    for name, got, want in zip("x dt A B C D".split(), ours, (t.grad for t in inputs)):
        assert torch.isfinite(got).all(), name
        assert rel(got, want) <= 1e-4, name


def test_conv_matches_torch_conv1d_per_sequence():
    g = torch.Generator().manual_seed(1)
    channels = 6
    x = torch.randn(1, sum(LENGTHS), channels, generator=g)
    weight, bias = torch.randn(channels, 4, generator=g), torch.randn(channels, generator=g)
    out = causal_conv1d_varlen(x, weight, bias, seq_idx_from_position_ids(positions(LENGTHS)), "silu")
    expected, start = [], 0
    for n in LENGTHS:
        segment = x[:, start : start + n].transpose(1, 2)
        conv = F.conv1d(segment, weight[:, None], bias, padding=3, groups=channels)[..., :n]
        expected.append(F.silu(conv).transpose(1, 2))
        start += n
    assert rel(out, torch.cat(expected, dim=1)) <= 1e-5


def test_conv_rejects_an_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        causal_conv1d_varlen(
            torch.zeros(1, 2, 3), torch.zeros(3, 4), None, torch.zeros(1, 2, dtype=torch.int32), "gelu"
        )


@pytest.mark.parametrize("heads,groups,sp", [(24, 1, 4), (8, 2, 4), (8, 2, 2), (6, 2, 3), (12, 4, 2), (12, 3, 4)])
def test_cuda_path_group_layout_matches_the_head_to_group_map(heads, groups, sp):
    """The kernel maps local head h to group h // (h_local / g_passed); our layout must agree with HF's map."""
    from verl_falcon_plugin.models.falcon_h1 import cuda_path

    B = torch.randn(1, 3, groups, 5)
    per_rank = heads // sp
    for rank in range(sp):
        local = slice(rank * per_rank, (rank + 1) * per_rank)
        head_group = torch.arange(local.start, local.stop) // (heads // groups)
        B_kernel = B[:, :, cuda_path.kernel_group_layout(local, heads // groups)]
        assert per_rank % B_kernel.shape[2] == 0  # the kernel asserts nheads % ngroups == 0
        kernel_map = torch.arange(per_rank) // (per_rank // B_kernel.shape[2])
        assert torch.equal(B_kernel[:, :, kernel_map], B[:, :, head_group])
    assert not cuda_path.scan_usable(B)  # CPU tensors always take the torch path
