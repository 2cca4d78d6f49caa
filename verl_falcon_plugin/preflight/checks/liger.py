"""Liger kernels for Falcon-H1 (``liger_patches``): numerically exact here, and wired into verl's use_liger.

When Triton can run:
* on a CUDA GPU, every kernel is checked (RoPE, RMSNorm, gated RMSNorm, SwiGLU, fused linear CE);
* on CPU with ``TRITON_INTERPRET=1`` (set before launching; slow but tiny), the kernels that Triton
  3.9's interpreter supports are checked: gated RMSNorm, RoPE and fused linear CE. Liger's RMSNorm
  and SwiGLU kernels need float-scalar and libdevice support the interpreter lacks (the test suite
  shims it; shipped code does not), so they stay HF's there and the detail says so;
* on CPU without ``TRITON_INTERPRET``, Triton cannot run at all: SKIP, with the way to enable it.
"""

from __future__ import annotations

import os

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available

LOSS_TOLERANCE = 1e-4
GRAD_TOLERANCE = 1e-3  # relative to each gradient's largest entry (fp32, TF32 off)
NEEDED = ("torch", "triton", "liger_kernel", "transformers")


def _interpreter_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@register_check("liger.falcon_h1", area="liger")
def falcon_h1_kernels() -> CheckResult:
    missing = [m for m in NEEDED if not is_available(m)]
    if missing:
        return CheckResult.skipped(f"{', '.join(missing)} not installed: pip install 'verl-falcon-plugin[liger]'")
    import torch

    if torch.cuda.is_available():
        device, flags, scope = "cuda", {}, "all kernels on GPU"
    elif _interpreter_requested():
        device = "cpu"
        flags = dict(rms_norm=False, swiglu=False)
        scope = "Triton interpreter: gated RMSNorm, RoPE, fused linear CE (RMSNorm/SwiGLU need a GPU)"
    else:
        return CheckResult.skipped(
            "no CUDA GPU, so Triton cannot run; rerun with TRITON_INTERPRET=1 to check the gated RMSNorm, "
            "RoPE and fused linear CE on the CPU interpreter"
        )
    from liger_patches.equivalence import measure_equivalence

    with _no_tf32(torch):
        result = measure_equivalence(device=device, **flags)
    error = max(result.loss_error / LOSS_TOLERANCE, result.worst_grad_error / GRAD_TOLERANCE)
    detail = (
        f"{scope}; tiny model n_groups=2, mlp_bias, random µP multipliers: |Δloss|={result.loss_error:.1e} "
        f"(tol {LOSS_TOLERANCE:g}), worst relative grad error {result.worst_grad_error:.1e} on "
        f"{result.worst_grad_name} (tol {GRAD_TOLERANCE:g}); error column = worst ratio to its tolerance"
    )
    return CheckResult.within(error, 1.0, detail)


class _no_tf32:
    """TF32 matmuls would dominate the comparison on Ampere+ GPUs; both sides run without them."""

    def __init__(self, torch):
        self._matmul = torch.backends.cuda.matmul
        self._saved = None

    def __enter__(self):
        self._saved = self._matmul.allow_tf32
        self._matmul.allow_tf32 = False

    def __exit__(self, *exc):
        self._matmul.allow_tf32 = self._saved
        return False


@register_check("liger.verl_use_liger", area="liger")
def verl_use_liger_hook() -> CheckResult:
    """After `import verl`: use_liger sends falcon_h1 to our function; use_fused_kernels keeps the multiplier."""
    if not (is_available("verl") and is_available("liger_kernel")):
        return CheckResult.skipped("verl or liger_kernel is not installed: verl's use_liger path does not exist")
    import verl  # noqa: F401  (runs our entry point)
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN
    from verl.models.transformers import dense_common

    from liger_patches.falcon_h1 import apply_liger_kernel_to_falcon_h1

    target = MODEL_TYPE_TO_APPLY_LIGER_FN.get("falcon_h1")
    if target is not apply_liger_kernel_to_falcon_h1:
        return CheckResult.failed(
            f"verl's use_liger would call {getattr(target, '__module__', None)}.{getattr(target, '__name__', target)} "
            f"for falcon_h1 (the plugin's activation did not run liger_patches.verl_hook:install)"
        )
    if not getattr(dense_common.forward_base_model, "_falcon_h1r_lm_head_multiplier", False):
        return CheckResult.failed(
            "verl's use_fused_kernels head would drop Falcon-H1's lm_head_multiplier "
            "(liger_patches.verl_hook:install did not wrap dense_common.forward_base_model)"
        )
    return CheckResult.passed(
        "use_liger -> liger_patches.apply_liger_kernel_to_falcon_h1; use_fused_kernels head keeps lm_head_multiplier"
    )
