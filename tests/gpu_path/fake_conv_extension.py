"""A stand-in for causal_conv1d's compiled ``causal_conv1d_cuda`` (its kernel is CUDA C++, no Triton).

Each entry replays the input checks of the C++ entry point (``csrc/causal_conv1d.cpp`` in
causal-conv1d 1.7.0: ``causal_conv1d_fwd`` lines 158-198, ``causal_conv1d_bwd`` lines
272-327), except ``is_cuda``, then computes with the package's own ``causal_conv1d_ref``
(which takes ``seq_idx`` in 1.7.0). So a call that the real kernel would reject fails
here with the kernel's own message, and the values are what the kernel is specified to
compute. Everything above the extension (``causal_conv1d_fn``, its autograd Function,
the ``torch.library`` custom ops and their output allocation) is the package's real code.

Test-only: installed into ``sys.modules`` by the worker process of ``tests/gpu_path``.
"""

from __future__ import annotations

import concurrent.futures
import sys
import types

import torch

FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16)


def torch_check(condition: bool, message: str = "") -> None:
    if not condition:  # TORCH_CHECK raises RuntimeError
        raise RuntimeError(f"causal_conv1d check failed: {message}")


def _check_common(x, weight, bias, seq_idx, seq_idx_message: str) -> bool:
    torch_check(x.dtype in FLOAT_TYPES and weight.dtype in FLOAT_TYPES, "input and weight dtypes")
    batch, dim, seqlen = x.shape
    width = weight.shape[-1]
    torch_check(tuple(weight.shape) == (dim, width), f"weight shape {tuple(weight.shape)}")
    torch_check(x.stride(2) == 1 or x.stride(1) == 1, "x needs stride(2) == 1 or stride(1) == 1")
    channel_last = x.stride(1) == 1 and x.stride(2) > 1
    if channel_last:
        torch_check(dim % 8 == 0, "causal_conv1d only supports channel dimension divisible by 8 for now")
        torch_check(
            x.stride(2) % 8 == 0 and x.stride(0) % 8 == 0,
            "causal_conv1d with channel last layout requires strides (x.stride(0) and x.stride(2)) "
            "to be multiples of 8",
        )
    torch_check(2 <= width <= 4, "causal_conv1d only supports width between 2 and 4")
    if bias is not None:
        torch_check(bias.dtype == weight.dtype, "bias dtype must equal weight dtype")
        torch_check(bias.stride(-1) == 1, "bias stride")
        torch_check(tuple(bias.shape) == (dim,), "bias shape")
    if seq_idx is not None:
        torch_check(channel_last, seq_idx_message)
        torch_check(seq_idx.dtype == torch.int32, "seq_idx must be int32")
        torch_check(seq_idx.is_contiguous(), "seq_idx must be contiguous")
        torch_check(tuple(seq_idx.shape) == (batch, seqlen), "seq_idx shape")
    return channel_last


def _reference(x, weight, bias, seq_idx, silu: bool):
    from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref

    return causal_conv1d_ref(x, weight, bias, activation="silu" if silu else None, seq_idx=seq_idx)


def _reference_grads(x, weight, bias, dout, seq_idx, silu: bool):
    """Autograd through the reference, in a fresh thread: the custom op runs this below the autograd dispatch key.

    On CPU copies: a CUDA backward would wait for autograd's device thread, which is busy running this one.
    """
    device = x.device
    leaves = [t.detach().cpu().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    seq_idx, dout = seq_idx.cpu() if seq_idx is not None else None, dout.cpu()

    def vjp():
        out = _reference(leaves[0], leaves[1], leaves[2] if bias is not None else None, seq_idx, silu)
        return [g.to(device) for g in torch.autograd.grad(out, leaves, dout)]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(vjp).result()


def causal_conv1d_fwd(x, weight, bias, seq_idx, initial_states, out, final_states_out, silu_activation):
    _check_common(x, weight, bias, seq_idx, "seq_idx is only supported for channel last layout")
    torch_check(initial_states is None and final_states_out is None, "the stand-in covers seq_idx calls only")
    out.copy_(_reference(x, weight, bias, seq_idx, silu_activation))


def causal_conv1d_bwd(
    x, weight, bias, dout, seq_idx, initial_states, dfinal_states, dx, dweight, dbias, dinitial_states, silu_activation
):
    torch_check((bias is None) == (dbias is None), "bias and dbias")
    channel_last = x.stride(1) == 1 and x.stride(2) > 1
    # the C++ entry fixes dout's layout itself before checking it
    if not channel_last and dout.stride(2) != 1:
        dout = dout.contiguous()
    if channel_last and dout.stride(1) != 1:
        dout = dout.transpose(-1, -2).contiguous().transpose(-1, -2)
    _check_common(x, weight, bias, seq_idx, "seq_idx only supported for channel last layout")
    if channel_last:
        torch_check(
            dout.stride(2) % 8 == 0 and dout.stride(0) % 8 == 0,
            "causal_conv1d with channel last layout requires strides (dout.stride(0) and dout.stride(2)) "
            "to be multiples of 8",
        )
    torch_check(dx.dtype == x.dtype, "dx dtype")
    torch_check(dx.stride(1) == 1 if channel_last else dx.stride(2) == 1, "dx layout must match x")
    torch_check(initial_states is None and dfinal_states is None, "the stand-in covers seq_idx calls only")
    grads = _reference_grads(x, weight, bias, dout, seq_idx, silu_activation)
    dx.copy_(grads[0])
    dweight.copy_(grads[1])
    if bias is not None:
        dbias.copy_(grads[2])


def install() -> None:
    """Make ``import causal_conv1d_cuda`` return this stand-in (call before importing causal_conv1d)."""
    module = types.ModuleType("causal_conv1d_cuda")
    module.causal_conv1d_fwd, module.causal_conv1d_bwd = causal_conv1d_fwd, causal_conv1d_bwd
    sys.modules["causal_conv1d_cuda"] = module
