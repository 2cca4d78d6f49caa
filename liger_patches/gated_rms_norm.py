"""Fused gated RMSNorm for the Falcon-H1 Mamba mixer (``FalconH1RMSNormGated``), forward and backward.

Liger 0.8.5 leaves this norm alone. It normalises each of ``n_groups`` contiguous
slices of the SSM output separately, and gates with ``silu(z)`` either before
(``norm_before_gate=False``, Falcon-H1/H1R's released setting and what vLLM
serves) or after normalising. Like the HF module, everything is computed in
fp32 (the weight included) and only the output is cast back to the input dtype.

One program handles one (token, group) row of ``group_size`` features, so the
row fits one block; the backward reduces the weight gradient over tokens in
per-program fp32 partials that are summed once at the end.

``eps`` is a ``tl.constexpr`` (one compiled variant per model) and the inverse
square root is ``tl.rsqrt``: no float scalar argument, no libdevice call.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _silu_and_grad(z):
    sig = tl.sigmoid(z)
    silu = z * sig
    return silu, sig * (1.0 + z * (1.0 - sig))


@triton.jit
def _gated_rms_norm_forward_kernel(
    Y_ptr,
    X_ptr,
    Z_ptr,
    W_ptr,
    RSTD_ptr,
    row_stride,
    n_groups,
    group_size,
    EPS: tl.constexpr,
    HAS_GATE: tl.constexpr,
    NORM_BEFORE_GATE: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < group_size
    offsets = token * row_stride + group * group_size + cols

    x = tl.load(X_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
    w = tl.load(W_ptr + group * group_size + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_GATE:
        z = tl.load(Z_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        silu_z = z * tl.sigmoid(z)
        if not NORM_BEFORE_GATE:
            x = x * silu_z

    rstd = tl.rsqrt(tl.sum(x * x, axis=0) / group_size + EPS)
    y = x * rstd * w
    if HAS_GATE:
        if NORM_BEFORE_GATE:
            y = y * silu_z

    tl.store(RSTD_ptr + token * n_groups + group, rstd)
    tl.store(Y_ptr + offsets, y.to(Y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gated_rms_norm_backward_kernel(
    DY_ptr,
    X_ptr,
    Z_ptr,
    W_ptr,
    RSTD_ptr,
    DX_ptr,
    DZ_ptr,
    DW_partial_ptr,
    row_stride,
    n_tokens,
    n_groups,
    group_size,
    tokens_per_program,
    HAS_GATE: tl.constexpr,
    NORM_BEFORE_GATE: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
):
    block = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1).to(tl.int64)
    cols = tl.arange(0, BLOCK_SIZE)
    mask = cols < group_size
    w = tl.load(W_ptr + group * group_size + cols, mask=mask, other=0.0).to(tl.float32)
    dw = tl.zeros((BLOCK_SIZE,), dtype=tl.float32)

    first = block * tokens_per_program
    last = tl.minimum(first + tokens_per_program, n_tokens)
    for token in range(first, last):
        offsets = token * row_stride + group * group_size + cols
        dy = tl.load(DY_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(X_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD_ptr + token * n_groups + group)
        if HAS_GATE:
            z = tl.load(Z_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
            silu_z, dsilu_z = _silu_and_grad(z)
            if NORM_BEFORE_GATE:
                # y = w * (x * rstd) * silu(z)
                normed = x * rstd
                dw += dy * normed * silu_z
                dz = dy * w * normed * dsilu_z
                dnormed = dy * w * silu_z
                dx = rstd * (dnormed - normed * (tl.sum(dnormed * normed, axis=0) / group_size))
            else:
                # h = x * silu(z); y = w * h * rstd(h)
                normed = x * silu_z * rstd
                dw += dy * normed
                dnormed = dy * w
                dh = rstd * (dnormed - normed * (tl.sum(dnormed * normed, axis=0) / group_size))
                dx = dh * silu_z
                dz = dh * x * dsilu_z
            tl.store(DZ_ptr + offsets, dz.to(DZ_ptr.dtype.element_ty), mask=mask)
        else:
            normed = x * rstd
            dw += dy * normed
            dnormed = dy * w
            dx = rstd * (dnormed - normed * (tl.sum(dnormed * normed, axis=0) / group_size))
        tl.store(DX_ptr + offsets, dx.to(DX_ptr.dtype.element_ty), mask=mask)

    tl.store(DW_partial_ptr + block * n_groups * group_size + group * group_size + cols, dw, mask=mask)


def _program_count_for_weight_reduction(n_tokens: int, device: torch.device) -> int:
    """Enough programs to fill the GPU; on CPU (interpreter) few, since each runs in Python."""
    if device.type == "cuda":
        multiprocessors = torch.cuda.get_device_properties(device).multi_processor_count
        return max(1, min(n_tokens, 4 * multiprocessors))
    return max(1, min(n_tokens, 4))


def _as_rows(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.reshape(-1, dim).contiguous()


def _check_shapes(x: torch.Tensor, z: torch.Tensor | None, weight: torch.Tensor, n_groups: int) -> None:
    dim = x.shape[-1]
    if weight.shape != (dim,):
        raise ValueError(f"gated RMSNorm: weight has shape {tuple(weight.shape)}, expected ({dim},)")
    if n_groups < 1 or dim % n_groups:
        raise ValueError(f"gated RMSNorm: n_groups={n_groups} must divide the hidden size {dim}")
    if z is not None and z.shape != x.shape:
        raise ValueError(f"gated RMSNorm: gate shape {tuple(z.shape)} differs from input shape {tuple(x.shape)}")


class LigerGatedRMSNormFunction(torch.autograd.Function):
    """``y = RMSNorm_grouped(x [* silu(z)]) [* silu(z)]`` with the weight applied per feature."""

    @staticmethod
    def forward(ctx, x, z, weight, eps: float, n_groups: int, norm_before_gate: bool):
        _check_shapes(x, z, weight, n_groups)
        shape, dim = x.shape, x.shape[-1]
        group_size = dim // n_groups
        x2 = _as_rows(x, dim)
        z2 = _as_rows(z, dim) if z is not None else None
        n_tokens = x2.shape[0]
        y = torch.empty_like(x2)
        rstd = torch.empty((n_tokens, n_groups), dtype=torch.float32, device=x.device)
        block = triton.next_power_of_2(group_size)
        if n_tokens:
            _gated_rms_norm_forward_kernel[(n_tokens, n_groups)](
                y,
                x2,
                z2 if z2 is not None else x2,
                weight,
                rstd,
                dim,
                n_groups,
                group_size,
                EPS=float(eps),
                HAS_GATE=z2 is not None,
                NORM_BEFORE_GATE=bool(norm_before_gate),
                BLOCK_SIZE=block,
            )
        ctx.save_for_backward(x2, z2 if z2 is not None else x2.new_empty(0), weight, rstd)
        ctx.has_gate = z is not None
        ctx.config = (shape, n_groups, bool(norm_before_gate))
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, z2, weight, rstd = ctx.saved_tensors
        shape, n_groups, norm_before_gate = ctx.config
        dim = x2.shape[-1]
        group_size = dim // n_groups
        n_tokens = x2.shape[0]
        dy2 = _as_rows(dy, dim)
        dx = torch.empty_like(x2)
        dz = torch.empty_like(z2) if ctx.has_gate else None
        programs = _program_count_for_weight_reduction(n_tokens, x2.device)
        tokens_per_program = math.ceil(n_tokens / programs) if n_tokens else 0
        dw_partial = torch.zeros((programs, dim), dtype=torch.float32, device=x2.device)
        if n_tokens:
            _gated_rms_norm_backward_kernel[(programs, n_groups)](
                dy2,
                x2,
                z2 if ctx.has_gate else x2,
                weight,
                rstd,
                dx,
                dz if ctx.has_gate else dx,
                dw_partial,
                dim,
                n_tokens,
                n_groups,
                group_size,
                tokens_per_program,
                HAS_GATE=ctx.has_gate,
                NORM_BEFORE_GATE=norm_before_gate,
                BLOCK_SIZE=triton.next_power_of_2(group_size),
            )
        dw = dw_partial.sum(0).to(weight.dtype)
        return dx.view(shape), (dz.view(shape) if dz is not None else None), dw, None, None, None


def liger_gated_rms_norm(
    x: torch.Tensor,
    gate: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    n_groups: int = 1,
    norm_before_gate: bool = False,
) -> torch.Tensor:
    """Functional form of :class:`LigerFalconH1RMSNormGated`."""
    return LigerGatedRMSNormFunction.apply(x, gate, weight, eps, n_groups, norm_before_gate)


class LigerFalconH1RMSNormGated(nn.Module):
    """Drop-in replacement for ``FalconH1RMSNormGated``: same constructor, same ``state_dict``."""

    def __init__(self, hidden_size: int, eps: float = 1e-6, n_groups: int = 1, norm_before_gate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps
        self.n_groups = n_groups
        self.norm_before_gate = norm_before_gate

    def forward(self, hidden_states: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        return liger_gated_rms_norm(
            hidden_states, gate, self.weight, self.variance_epsilon, self.n_groups, self.norm_before_gate
        )

    def extra_repr(self) -> str:
        return (
            f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}, n_groups={self.n_groups}, "
            f"norm_before_gate={self.norm_before_gate}"
        )
