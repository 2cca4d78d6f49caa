"""The GPU path (``cuda_path``) against the torch path and a float64 recurrence; shared by tests and preflight.

References, neither of them the kernel: the step-by-step recurrence of the SSD
definition in float64 (:func:`ssd_recurrence_float64`, also not the chunked torch
path), and the torch path (``varlen_ssd`` / ``varlen_conv``). Errors are relative,
``max|a - b| / max|b|`` (``equivalence.relative_error``).

Runs wherever ``cuda_path`` can run: on a GPU with the real kernels, or on CPU under
the Triton interpreter (``verl_falcon_plugin.testing.mamba_interpreter``), where the
caller forces the kernel path for CPU tensors.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from verl_falcon_plugin.models.falcon_h1 import cuda_path
from verl_falcon_plugin.models.falcon_h1.boundaries import PackedSequences, seq_idx_from_position_ids
from verl_falcon_plugin.models.falcon_h1.equivalence import relative_error
from verl_falcon_plugin.models.falcon_h1.varlen_ssd import ssd_scan_varlen
from verl_falcon_plugin.requires import require

torch = require("torch", "the Falcon-H1 GPU-path checks")

#: ragged lengths around chunk 8: a length-1 sequence, boundaries on and off chunk edges
SCAN_LENGTHS = (5, 8, 1, 11, 7)
#: float32 kernel vs float32 torch path / float64 recurrence, exact dots: interpreter, or a GPU with
#: TRITON_F32_DEFAULT=ieee (measured <= 4.2e-7 on both)
FP32_TOLERANCE = 1e-5
#: float32 on a GPU: the kernel's tl.dot uses TF32 by default (H200: outputs 1.1e-3 to 2.1e-3, grads <= 2.3e-3)
GPU_TF32_TOLERANCE = 1e-2
#: bf16 activations: the kernel rounds its output to bf16 and carries chunk states in bf16
#: (measured: output 3.8e-3 / grads 6.4e-3 on an H200, 9e-3 / 8e-3 on the interpreter; one bf16 ulp is 7.8e-3)
BF16_TOLERANCE = 5e-2
#: the whole mixer with bf16 weights, both paths: the gradients of per-head parameters (A_log, D, dt_bias) sum over
#: every token in bf16 (measured: output 4.8e-3, gradients up to 3.9e-2 on an H200; 6.8e-3 / 3.1e-2 interpreted)
MIXER_BF16_TOLERANCE = 1e-1
#: the scan without seq_idx leaks state across sequences: it must be off by far more than this
LEAK_FLOOR = 1e-2
SCAN_INPUTS = ("x", "dt", "A", "B", "C", "D")


def packed_seq_idx(lengths, device: str = "cpu") -> "torch.Tensor":
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    return seq_idx_from_position_ids(position_ids).to(device)


def scan_inputs(lengths, heads: int, groups: int, head_dim: int = 8, state: int = 8, seed: int = 0, device="cpu"):
    """Random scan inputs (dt positive and small, A negative) as the mixer hands them over, float32."""
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    inputs = dict(
        x=torch.randn(1, T, heads, head_dim, generator=g),
        dt=torch.rand(1, T, heads, generator=g) * 0.5 + 0.05,
        A=-(torch.rand(heads, generator=g) + 0.5),
        B=torch.randn(1, T, groups, state, generator=g),
        C=torch.randn(1, T, groups, state, generator=g),
        D=torch.randn(heads, generator=g),
    )
    return {k: v.to(device) for k, v in inputs.items()}


def ssd_recurrence_float64(x, dt, A, B, C, D, seq_idx, head_group) -> "torch.Tensor":
    """``h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T``, ``y_t = h_t C_t + D x_t``, h reset where a sequence starts."""
    x, dt, A, B, C, D = (t.double() for t in (x, dt, A, B, C, D))
    batch, T, heads, head_dim = x.shape
    B, C = B[:, :, head_group], C[:, :, head_group]  # (b, T, h, n)
    ys = []
    for b in range(batch):
        h = x.new_zeros(heads, head_dim, B.shape[-1])
        rows = []
        for t in range(T):
            if t > 0 and seq_idx[b, t] != seq_idx[b, t - 1]:
                h = torch.zeros_like(h)
            decay = torch.exp(dt[b, t] * A)[:, None, None]
            h = decay * h + (dt[b, t][:, None] * x[b, t])[..., None] * B[b, t][:, None, :]
            rows.append(torch.einsum("hpn,hn->hp", h, C[b, t]) + D[:, None] * x[b, t])
        ys.append(torch.stack(rows))
    return torch.stack(ys)


def _run_with_grads(fn, inputs: dict, dout: "torch.Tensor", dtype=None) -> tuple["torch.Tensor", dict]:
    leaves = {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}
    args = {k: (v.to(dtype) if dtype is not None and k in ("x", "B", "C") else v) for k, v in leaves.items()}
    y = fn(**args)
    (y.float() * dout).sum().backward()
    return y.detach(), {k: v.grad for k, v in leaves.items()}


def _worst(errors: dict[str, float]) -> tuple[float, str]:
    where = max(errors, key=errors.get)
    return errors[where], where


def scan_errors(
    lengths=SCAN_LENGTHS, heads: int = 4, groups: int = 2, heads_slice: slice | None = None, dtype=None, device="cpu"
) -> dict[str, Any]:
    """The kernel scan (fwd + bwd) vs the torch path and the float64 recurrence, for one rank's ``heads_slice``.

    ``dtype`` (e.g. bf16) is what x, B and C are cast to before the kernel, as the mixer's
    activations would be; both references see the same rounded values in float32/float64.
    """
    local = heads_slice or slice(0, heads)
    per_group = heads // groups
    full = scan_inputs(lengths, heads, groups, device=device)
    if dtype is not None:  # the references start from the values the kernel sees
        full.update({k: full[k].to(dtype).float() for k in ("x", "B", "C")})
    inputs = dict(full, x=full["x"][:, :, local], dt=full["dt"][:, :, local], A=full["A"][local], D=full["D"][local])
    seq_idx = packed_seq_idx(lengths, device)
    head_group = torch.arange(local.start, local.stop, device=device) // per_group
    dout = torch.randn(inputs["x"].shape, generator=torch.Generator().manual_seed(7)).to(device)

    def kernel(x, dt, A, B, C, D):
        return cuda_path.ssd_scan(x, dt, A, B, C, D, seq_idx, 8, local, per_group)

    def torch_path(x, dt, A, B, C, D):
        return ssd_scan_varlen(x, dt, A, B, C, D, seq_idx, 8, head_group)

    def recurrence(x, dt, A, B, C, D):
        return ssd_recurrence_float64(x, dt, A, B, C, D, seq_idx, head_group)

    y, grads = _run_with_grads(kernel, inputs, dout, dtype)
    y_torch, grads_torch = _run_with_grads(torch_path, inputs, dout)
    y_f64, grads_f64 = _run_with_grads(recurrence, {k: v.double() for k, v in inputs.items()}, dout.double())
    grad_vs_torch = {k: relative_error(grads[k].double(), grads_torch[k].double()) for k in SCAN_INPUTS}
    grad_vs_f64 = {k: relative_error(grads[k].double(), grads_f64[k]) for k in SCAN_INPUTS}
    return dict(
        out_dtype=str(y.dtype),
        out_vs_torch=relative_error(y.double(), y_torch.double()),
        out_vs_float64=relative_error(y.double(), y_f64),
        torch_vs_float64=relative_error(y_torch.double(), y_f64),
        grads_vs_torch=_worst(grad_vs_torch),
        grads_vs_float64=_worst(grad_vs_f64),
    )


def scan_without_seq_idx_error(lengths=SCAN_LENGTHS, heads: int = 4, groups: int = 2, device="cpu") -> float:
    """Negative control: the same kernel without ``seq_idx`` vs the recurrence (must exceed LEAK_FLOOR)."""
    inputs = scan_inputs(lengths, heads, groups, device=device)
    seq_idx = packed_seq_idx(lengths, device)
    head_group = torch.arange(heads, device=device) // (heads // groups)
    y = cuda_path._scan_kernel()(*(inputs[k] for k in ("x", "dt", "A", "B", "C")), 8, D=inputs["D"])
    return relative_error(y.double(), ssd_recurrence_float64(**inputs, seq_idx=seq_idx, head_group=head_group))


@contextlib.contextmanager
def torch_path_forced() -> Iterator[None]:
    """``FALCON_H1R_TORCH_SCAN=1`` (the documented switch) for the duration."""
    previous = os.environ.get("FALCON_H1R_TORCH_SCAN")
    os.environ["FALCON_H1R_TORCH_SCAN"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["FALCON_H1R_TORCH_SCAN"]
        else:
            os.environ["FALCON_H1R_TORCH_SCAN"] = previous


@contextlib.contextmanager
def kernel_calls_counted() -> Iterator[dict[str, int]]:
    """Counts the calls that really reached ``cuda_path.conv1d`` / ``cuda_path.ssd_scan``."""
    counts = {"conv1d": 0, "ssd_scan": 0}
    originals = {name: getattr(cuda_path, name) for name in counts}

    def counted(name):
        def call(*args, **kwargs):
            counts[name] += 1
            return originals[name](*args, **kwargs)

        return call

    try:
        for name in counts:
            setattr(cuda_path, name, counted(name))
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(cuda_path, name, fn)


def _mixer_run(mixer, hidden: "torch.Tensor", packed: PackedSequences, dout: "torch.Tensor"):
    from verl_falcon_plugin.models.falcon_h1.mixer import packed_mixer_forward

    mixer.zero_grad(set_to_none=True)
    leaf = hidden.detach().clone().requires_grad_()
    out = packed_mixer_forward(mixer, leaf, packed)
    (out.float() * dout).sum().backward()
    grads = {"hidden_states": leaf.grad} | {
        n: p.grad.clone() for n, p in mixer.named_parameters() if p.grad is not None
    }
    return out.detach(), grads


def mixer_errors(geometry: dict, lengths=SCAN_LENGTHS, device="cpu", dtype: str = "float32", seed: int = 0):
    """Layer 0's ``packed_mixer_forward`` on the kernels vs forced onto the torch path (output and all grads)."""
    from verl_falcon_plugin.testing import tiny_falcon_h1

    mixer = tiny_falcon_h1(geometry, seed=seed, dtype=dtype, num_hidden_layers=1).model.layers[0].mamba.to(device)
    g = torch.Generator().manual_seed(seed + 3)
    hidden = torch.randn(1, sum(lengths), geometry["hidden_size"], generator=g).to(device, getattr(torch, dtype))
    dout = torch.randn(hidden.shape, generator=g).to(device)
    packed = PackedSequences(packed_seq_idx(lengths, device))
    with kernel_calls_counted() as calls:
        out, grads = _mixer_run(mixer, hidden, packed, dout)
    with torch_path_forced():
        out_ref, grads_ref = _mixer_run(mixer, hidden, packed, dout)
    grad_errors = {n: relative_error(grads[n].double(), grads_ref[n].double()) for n in grads_ref}
    return dict(
        kernel_calls=dict(calls),
        out=relative_error(out.double(), out_ref.double()),
        grads=_worst(grad_errors),
        missing_grads=sorted(set(grads_ref) - set(grads)),
    )
