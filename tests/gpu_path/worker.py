"""One case of the GPU-path tests, in a fresh process: ``python -m tests.gpu_path.worker CASE`` prints JSON.

A fresh process per case, because the Triton interpreter must be switched on before
triton is imported, and the shims (``mamba_interpreter.enable``, the conv stand-in)
change process-wide state that no other test should see.
"""

from __future__ import annotations

import json
import sys

from verl_falcon_plugin.testing import mamba_interpreter

mamba_interpreter.enable()  # before anything imports triton

from tests.gpu_path import fake_conv_extension  # noqa: E402

fake_conv_extension.install()  # before anything imports causal_conv1d

import torch  # noqa: E402

from verl_falcon_plugin.models.falcon_h1 import gpu_path_equivalence as eq  # noqa: E402


def scan() -> dict:
    """Everything about ``cuda_path.ssd_scan`` (one process: importing mamba_ssm under the interpreter is slow).

    fp32 fwd + bwd with n_groups 1 / 2 / 4 (ragged lengths, a length-1 sequence,
    boundaries on chunk edges); every SP rank's head slice, where 12 heads in 3 groups
    over 4 ranks split groups unevenly (rank 1 holds heads of groups 0, 1, 1) and 8 heads
    in 4 groups over 2 ranks give each rank a slice of two groups; bf16; no seq_idx.
    """
    rows = {f"groups={g}": eq.scan_errors(heads=4, groups=g) for g in (1, 2, 4)}
    for heads, groups, sp in ((12, 3, 4), (8, 4, 2)):
        per_rank = heads // sp
        for rank in range(sp):
            local = slice(rank * per_rank, (rank + 1) * per_rank)
            rows[f"heads={heads} groups={groups} sp={sp} rank={rank}"] = eq.scan_errors(
                heads=heads, groups=groups, heads_slice=local, lengths=(6, 1, 9)
            )
    return dict(
        fp32=rows,
        bf16=eq.scan_errors(heads=4, groups=2, dtype=torch.bfloat16),
        no_seq_idx=eq.scan_without_seq_idx_error(),
    )


def conv() -> dict:
    """``cuda_path.conv1d`` through causal_conv1d's real Python layers onto the replayed C++ checks."""
    from causal_conv1d import causal_conv1d_fn
    from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref

    from verl_falcon_plugin.models.falcon_h1 import cuda_path
    from verl_falcon_plugin.models.falcon_h1.varlen_conv import causal_conv1d_varlen

    lengths, g = (5, 1, 3, 9), torch.Generator().manual_seed(0)
    seq_idx = eq.packed_seq_idx(lengths)
    # laid out as the mixer builds it: x, B and C channels concatenated, (batch, seq, channels)
    xBC = torch.cat([torch.randn(1, sum(lengths), n, generator=g) for n in (16, 4, 4)], dim=-1)
    weight, bias = torch.randn(24, 4, generator=g), torch.randn(24, generator=g)
    dout = torch.randn(xBC.shape, generator=g)

    def run(fn, *args):
        leaves = [t.clone().requires_grad_() for t in (xBC, weight, bias)]
        out = fn(*leaves, *args)
        (out * dout).sum().backward()
        return out.detach(), [t.grad for t in leaves]

    def no_seq_idx(x, w, b):
        return causal_conv1d_fn(x.transpose(1, 2), w, b, activation="silu").transpose(1, 2)

    def rejected(call) -> str:
        try:
            call()
        except RuntimeError as err:
            return str(err)
        return ""

    out, grads = run(cuda_path.conv1d, seq_idx, "silu")
    out_torch, grads_torch = run(causal_conv1d_varlen, seq_idx, "silu")
    ref = causal_conv1d_ref(xBC.transpose(1, 2), weight, bias, activation="silu", seq_idx=seq_idx).transpose(1, 2)
    leaky, _ = run(no_seq_idx)
    x12 = xBC[..., :12].contiguous()
    return dict(
        accepted=cuda_path.conv_constraint_violation(xBC, weight, bias),
        out_vs_torch=eq.relative_error(out, out_torch),
        out_vs_ref=eq.relative_error(out, ref),
        grads_vs_torch=max(eq.relative_error(a, b) for a, b in zip(grads, grads_torch)),
        no_seq_idx_vs_torch=eq.relative_error(leaky, out_torch),
        # what the checks reject, and that conv_usable() would have named it first
        rejects_channels_first=rejected(
            lambda: causal_conv1d_fn(xBC.transpose(1, 2).contiguous(), weight, bias, seq_idx=seq_idx)
        ),
        rejects_int64_seq_idx=rejected(
            lambda: causal_conv1d_fn(xBC.transpose(1, 2), weight, bias, seq_idx=seq_idx.long())
        ),
        rejects_12_channels=rejected(lambda: cuda_path.conv1d(x12, weight[:12], bias[:12], seq_idx, "silu")),
        reason_12_channels=cuda_path.conv_constraint_violation(x12, weight[:12], bias[:12]),
        rejects_width_5=rejected(lambda: cuda_path.conv1d(xBC, torch.randn(24, 5), bias, seq_idx, "silu")),
        reason_width_5=cuda_path.conv_constraint_violation(xBC, torch.randn(24, 5), bias),
        rejects_bias_dtype=rejected(lambda: cuda_path.conv1d(xBC, weight, bias.double(), seq_idx, "silu")),
        reason_bias_dtype=cuda_path.conv_constraint_violation(xBC, weight, bias.double()),
    )


def mixer() -> dict:
    """``packed_mixer_forward`` with the kernel path taken for CPU tensors vs forced onto the torch path."""
    from verl_falcon_plugin.testing import GROUPED_GEOMETRY, REALISTIC_GEOMETRY

    with mamba_interpreter.kernel_path_on_cpu():
        return {
            "realistic": eq.mixer_errors(REALISTIC_GEOMETRY, lengths=(5, 1, 10)),
            "grouped": eq.mixer_errors(GROUPED_GEOMETRY, lengths=(5, 1, 10)),
        }


def model() -> dict:
    """The conv call and the whole mixer (one process: importing transformers and mamba_ssm is slow)."""
    return dict(conv=conv(), mixer=mixer())


CASES = {fn.__name__: fn for fn in (scan, model)}

if __name__ == "__main__":
    print(json.dumps(CASES[sys.argv[1]]()))
