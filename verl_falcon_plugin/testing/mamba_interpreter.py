"""Run mamba_ssm's Triton SSD scan on CPU tensors under the Triton interpreter (tests and the CPU preflight).

Never imported by the training path: :func:`enable` changes process-wide state
(``torch.cuda`` functions, Triton's interpreter), so it runs only in processes made
for it (each test in ``tests/gpu_path`` spawns one; the preflight check
``falcon_h1.gpu_path`` too). mamba_ssm must be installed from its sdist without
the CUDA build (``scripts/build_venv.sh`` does it on machines without CUDA).

``TRITON_INTERPRET=1`` must be set before ``triton`` is imported (``@triton.jit``
picks the interpreter when it decorates), and ``MAMBA_DETERMINISTIC=1`` keeps one
autotune config per kernel (autotuning benchmarks, which needs a GPU driver). Four
shims are then needed, none of them in mamba_ssm's or our kernels' logic:

1. stub modules for the compiled extensions ``import mamba_ssm`` loads
   (``selective_scan_cuda``; never called by the SSD scan);
2. ``torch.cuda.device(None)`` as a null context: every launch wraps
   ``with torch.cuda.device(t.device.index)``, and a CPU tensor's index is None;
3. ``torch.cuda.get_device_properties(cpu)`` answering ``multi_processor_count``
   (the backward sizes some grids with it);
4. Triton 3.9's interpreter multiplies bfloat16 ``tl.dot`` operands as their raw
   uint16 bit patterns (``InterpreterBuilder.create_dot``,
   ``triton/runtime/interpreter.py:762-769``): bf16 operands are widened to float32
   first, which is exact. Upstream patch: ``upstream_prs/triton-interpreter-bf16-dot``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types

#: grid size the backward asks the "device" for; any positive number is valid on CPU
CPU_MULTIPROCESSORS = 2
COMPILED_EXTENSIONS = ("selective_scan_cuda",)
_SHIM_MARK = "_falcon_h1r_mamba_interpreter_shim"


def enable() -> None:
    """Switch this process to the Triton interpreter and install the four shims (idempotent)."""
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "triton was imported before the Triton interpreter was enabled; call "
            "verl_falcon_plugin.testing.mamba_interpreter.enable() first thing in a fresh process"
        )
    os.environ["TRITON_INTERPRET"] = "1"
    os.environ["MAMBA_DETERMINISTIC"] = "1"
    for name in COMPILED_EXTENSIONS:
        sys.modules.setdefault(name, types.ModuleType(name))
    _shim_torch_cuda()
    _shim_bf16_dot()


def _shim_torch_cuda() -> None:
    import torch

    if getattr(torch.cuda.device, _SHIM_MARK, False):
        return
    real_device, real_properties = torch.cuda.device, torch.cuda.get_device_properties

    def device(index):
        return contextlib.nullcontext() if index is None else real_device(index)

    def get_device_properties(where=None):
        if where is not None and torch.device(where).type == "cpu":
            return types.SimpleNamespace(multi_processor_count=CPU_MULTIPROCESSORS)
        return real_properties(where)

    setattr(device, _SHIM_MARK, True)
    torch.cuda.device, torch.cuda.get_device_properties = device, get_device_properties


def bf16_bits_to_float32(bits):
    """bfloat16 stored as uint16 (how the interpreter holds it) -> the same values as float32, exactly."""
    import numpy as np

    return (bits.astype(np.uint32) << 16).view(np.float32)


def _shim_bf16_dot() -> None:
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    if getattr(builder.create_dot, _SHIM_MARK, False):
        return
    real_create_dot = builder.create_dot

    def widen(operand):
        if operand.dtype != tl.bfloat16:
            return operand
        return interpreter.TensorHandle(bf16_bits_to_float32(operand.data), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return real_create_dot(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    setattr(create_dot, _SHIM_MARK, True)
    builder.create_dot = create_dot


@contextlib.contextmanager
def kernel_path_on_cpu():
    """Let ``cuda_path`` take CPU tensors (as if they were on a GPU) for the duration; interpreter only."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("the kernel path runs on CPU tensors only under the Triton interpreter: call enable() first")
    from verl_falcon_plugin.models.falcon_h1 import cuda_path

    original = cuda_path._device_ok
    cuda_path._device_ok = lambda t: os.environ.get("FALCON_H1R_TORCH_SCAN", "0") != "1"
    try:
        yield
    finally:
        cuda_path._device_ok = original


def interpreter_scan_report() -> dict:
    """The preflight's CPU run (in a fresh process): the kernel scan fp32 fwd + bwd and the no-seq_idx control."""
    enable()
    from verl_falcon_plugin.models.falcon_h1 import gpu_path_equivalence as eq

    return dict(scan=eq.scan_errors(heads=4, groups=2), no_seq_idx=eq.scan_without_seq_idx_error())


if __name__ == "__main__":  # used by the preflight check falcon_h1.gpu_path on machines without CUDA
    import json

    print(json.dumps(interpreter_scan_report()))
