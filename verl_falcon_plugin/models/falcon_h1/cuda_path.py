"""GPU path: mamba_ssm's chunked scan and causal_conv1d, both with ``seq_idx`` resets.

Used automatically for CUDA tensors when the kernels import (``pip install
'verl-falcon-plugin[cuda]'``); set ``FALCON_H1R_TORCH_SCAN=1`` to force the torch
path (``varlen_conv`` / ``varlen_ssd``), e.g. to compare the two on a GPU.

The calls follow the upstream signatures (read from the sources):

- ``causal_conv1d.causal_conv1d_fn(x, weight, bias=None, seq_idx=None, ...,
  activation=None)`` with x (batch, dim, seqlen), weight (dim, width), seq_idx
  (batch, seqlen) int32. Its C++ entry (``causal_conv1d.cpp`` ``causal_conv1d_fwd``,
  1.7.0) takes ``seq_idx`` only in the channel-last layout (``x.stride(1) == 1``, which
  ``(b, l, d).transpose(1, 2)`` gives), and then needs ``dim % 8 == 0`` and strides that
  are multiples of 8; width 2 to 4; a bias of the weight's dtype. :func:`conv_usable`
  checks these first and falls back to the torch conv with a logged reason.
- ``mamba_ssm.ops.triton.ssd_combined.mamba_chunk_scan_combined(x, dt, A, B, C,
  chunk_size, D=None, ..., seq_idx=None, ...)`` with x (b, l, h, p), dt (b, l, h),
  A (h,), B/C (b, l, g, n), seq_idx (b, l). The kernel maps head ``h`` to group
  ``h // (nheads // ngroups)`` and accepts views whose last stride is 1.

Dtype contract: the torch path computes and returns float32. The kernel returns
``x.dtype`` and keeps the states carried between chunks in ``C.dtype``: with bf16
activations both are rounded to bf16 (against the float32 torch path, max-relative on
the scan output: 3.8e-3 on an H200, 9e-3 on the interpreter), so comparing the two
paths needs bf16 tolerances (``gpu_path_equivalence``). The caller casts ``y`` back
anyway. On a GPU, the kernel's float32 ``tl.dot`` uses TF32: float32 inputs agree with
the torch path to about 2e-3 there (4e-7 with ``TRITON_F32_DEFAULT=ieee``).

Tested without a GPU: the Triton scan runs under the Triton interpreter and the conv
call is replayed against ``causal_conv1d_ref`` with the C++ entry's input checks
(``tests/gpu_path``); the preflight check ``falcon_h1.gpu_path`` runs the real kernels
on a GPU.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import os
from typing import Any, Callable

from verl_falcon_plugin.requires import require

torch = require("torch", "Falcon-H1 packed sequences")
logger = logging.getLogger(__name__)

#: the fix for a CPU-only (or broken) build of the kernels, named in the warning
REBUILD_FIX = (
    "reinstall them on this CUDA machine, with MAMBA_SKIP_CUDA_BUILD / CAUSAL_CONV1D_SKIP_CUDA_BUILD unset: "
    "`pip install --no-build-isolation --no-deps --force-reinstall --no-cache-dir mamba-ssm causal-conv1d` "
    "(--no-cache-dir: pip would otherwise reuse the wheel it built without CUDA)"
)
CONV_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _import_kernel(module: str, attribute: str, package: str) -> Callable[..., Any] | None:
    """The kernel function, or None; a package that is installed but does not import is warned about once."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        if importlib.util.find_spec(package) is None:
            logger.info("falcon_h1r: %s is not installed; the Falcon-H1 mixer uses the torch path on GPU", package)
        else:
            logger.warning(
                "falcon_h1r: %s is installed but its CUDA kernels do not import (%s), so the Falcon-H1 mixer "
                "falls back to the slower torch path on GPU. To use the kernels, %s.",
                package,
                err,
                REBUILD_FIX,
            )
        return None


@functools.cache
def _conv_kernel() -> Callable[..., Any] | None:
    return _import_kernel("causal_conv1d", "causal_conv1d_fn", "causal_conv1d")


@functools.cache
def _scan_kernel() -> Callable[..., Any] | None:
    return _import_kernel("mamba_ssm.ops.triton.ssd_combined", "mamba_chunk_scan_combined", "mamba_ssm")


def _device_ok(t: "torch.Tensor") -> bool:
    return t.is_cuda and os.environ.get("FALCON_H1R_TORCH_SCAN", "0") != "1"


def scan_usable(x: "torch.Tensor") -> bool:
    """True when ``x`` lives on a CUDA device and mamba_ssm's scan imports."""
    return _device_ok(x) and _scan_kernel() is not None


def conv_constraint_violation(x: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None") -> str | None:
    """Why causal_conv1d's C++ entry would reject this call with ``seq_idx``, or None.

    ``x`` is (batch, seq, channels), as the mixer holds it; the kernel sees its
    transpose, so kernel stride(1) is ``x.stride(2)`` and kernel stride(2) is ``x.stride(1)``.
    """
    channels, width = weight.shape
    if x.dtype not in CONV_DTYPES or weight.dtype not in CONV_DTYPES:
        return f"dtypes x={x.dtype}, weight={weight.dtype} (the kernel takes float32, float16, bfloat16)"
    if not 2 <= width <= 4:
        return f"conv width {width} (the kernel takes 2 to 4)"
    if channels % 8:
        return f"{channels} conv channels (seq_idx needs the channel-last layout, which needs a multiple of 8)"
    if x.stride(2) != 1 or x.stride(1) % 8 or x.stride(0) % 8:
        return f"x strides {tuple(x.stride())} (the channel-last layout needs (8k, 8m, 1))"
    if bias is not None and (bias.dtype != weight.dtype or bias.stride(-1) != 1):
        return f"bias dtype {bias.dtype} / stride {bias.stride(-1)} (the kernel needs {weight.dtype}, stride 1)"
    return None


@functools.cache
def _log_conv_fallback(reason: str) -> None:
    logger.warning("falcon_h1r: causal_conv1d cannot take this Falcon-H1 conv (%s); using the torch conv", reason)


def conv_usable(x: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None") -> bool:
    """True when causal_conv1d can run this conv; a call it would reject is logged (once per reason) instead."""
    if not _device_ok(x) or _conv_kernel() is None:
        return False
    reason = conv_constraint_violation(x, weight, bias)
    if reason is not None:
        _log_conv_fallback(reason)
        return False
    return True


def conv1d(
    x: "torch.Tensor", weight: "torch.Tensor", bias: "torch.Tensor | None", seq_idx: "torch.Tensor", activation: str
) -> "torch.Tensor":
    """x: (batch, seq, channels) -> same shape; see ``varlen_conv.causal_conv1d_varlen``.

    Call only where :func:`conv_usable` is True. ``seq_idx`` from ``boundaries`` is
    already int32 and contiguous (the ``.to`` is then free).
    """
    out = _conv_kernel()(x.transpose(1, 2), weight, bias, seq_idx=seq_idx.to(torch.int32), activation=activation)
    return out.transpose(1, 2)


def kernel_group_layout(heads: slice, heads_per_group: int) -> slice | list[int]:
    """Which B/C groups to hand the kernel so that its ``h // (nheads // ngroups)`` finds each local head's group.

    Pure Python (no device sync). This rank's heads are contiguous, so their groups
    come in runs: equal runs of consecutive groups are a slice of B/C (a view);
    uneven runs (a group split across SP ranks) need each head's own group, a gather.
    """
    groups = [head // heads_per_group for head in range(heads.start, heads.stop)]
    runs: dict[int, int] = {}
    for group in groups:
        runs[group] = runs.get(group, 0) + 1
    if len(set(runs.values())) == 1:
        return slice(groups[0], groups[-1] + 1)
    return groups


def ssd_scan(
    x: "torch.Tensor",
    dt: "torch.Tensor",
    A: "torch.Tensor",
    B: "torch.Tensor",
    C: "torch.Tensor",
    D: "torch.Tensor",
    seq_idx: "torch.Tensor",
    chunk_size: int,
    heads: slice,
    heads_per_group: int,
) -> "torch.Tensor":
    """``varlen_ssd.ssd_scan_varlen`` on the kernel (dt already softplus'ed and clamped); returns ``x.dtype``.

    ``heads`` are this rank's SSM heads (all of them without SP) and ``heads_per_group``
    is ``num_heads // n_groups`` of the whole model. Call only where :func:`scan_usable` is True.
    """
    layout = kernel_group_layout(heads, heads_per_group)
    B, C = B[:, :, layout], C[:, :, layout]
    return _scan_kernel()(x, dt, A, B, C, chunk_size, D=D, seq_idx=seq_idx.to(torch.int32))
