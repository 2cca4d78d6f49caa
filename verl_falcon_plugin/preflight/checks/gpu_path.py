"""The Falcon-H1 GPU path (``models/falcon_h1/cuda_path.py``: mamba_ssm's scan and causal_conv1d, with seq_idx).

* On a CUDA GPU: the real kernels. The scan (fp32 and bf16 activations, fwd + bwd) against
  the torch path and a float64 recurrence, and layer 0's ``packed_mixer_forward`` on the
  kernels against the same forced onto the torch path (``FALCON_H1R_TORCH_SCAN=1``).
* Without CUDA, with mamba_ssm installed: its Triton scan on the Triton interpreter, in a
  fresh process (the interpreter must be on before triton is imported). causal_conv1d's
  kernel is CUDA C++ and cannot run there.
* Otherwise SKIP, naming what is missing.

Each run includes the negative control: the scan without ``seq_idx`` must be wrong.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available

INTERPRETER_TIMEOUT_S = 600


def _ratio_verdict(rows: list[tuple[str, float, float]], leak: float, scope: str) -> CheckResult:
    from verl_falcon_plugin.models.falcon_h1.gpu_path_equivalence import LEAK_FLOOR

    name, error, tol = max(rows, key=lambda r: r[1] / r[2])
    listed = "; ".join(f"{n} {e:.1e} (tol {t:g})" for n, e, t in rows)
    detail = f"{scope}: {listed}; without seq_idx {leak:.1e}; error column = worst ratio to its tolerance"
    if not leak > LEAK_FLOOR:
        return CheckResult.failed(f"{detail} — the scan without seq_idx should be wrong; the check proves nothing")
    return CheckResult.within(error / tol, 1.0, detail)


def _scan_rows(row: dict, label: str, tol: float) -> list[tuple[str, float, float]]:
    return [
        (f"{label} out vs torch", row["out_vs_torch"], tol),
        (f"{label} out vs float64", row["out_vs_float64"], tol),
        (f"{label} grads vs float64 ({row['grads_vs_float64'][1]})", row["grads_vs_float64"][0], tol),
    ]


def _on_gpu() -> CheckResult:
    import torch

    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the torch-path side stays float32; the kernel's TF32 is its own
    try:
        return _compare_on_gpu()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _compare_on_gpu() -> CheckResult:
    import torch

    from verl_falcon_plugin.models.falcon_h1 import cuda_path
    from verl_falcon_plugin.models.falcon_h1 import gpu_path_equivalence as eq
    from verl_falcon_plugin.testing import GROUPED_GEOMETRY, REALISTIC_GEOMETRY

    if cuda_path._scan_kernel() is None or cuda_path._conv_kernel() is None:
        return CheckResult.failed(f"mamba_ssm / causal_conv1d are installed but do not import; {cuda_path.REBUILD_FIX}")
    rows = _scan_rows(eq.scan_errors(device="cuda"), "scan fp32", eq.GPU_TF32_TOLERANCE)
    rows += _scan_rows(eq.scan_errors(device="cuda", dtype=torch.bfloat16), "scan bf16", eq.BF16_TOLERANCE)
    for name, geometry in (("realistic", REALISTIC_GEOMETRY), ("grouped", GROUPED_GEOMETRY)):
        for dtype, tol in (("float32", eq.GPU_TF32_TOLERANCE), ("bfloat16", eq.MIXER_BF16_TOLERANCE)):
            mixer = eq.mixer_errors(geometry, device="cuda", dtype=dtype)
            if mixer["kernel_calls"] != {"conv1d": 1, "ssd_scan": 1}:
                return CheckResult.failed(f"the mixer did not run on the kernels: {mixer['kernel_calls']}")
            label = f"mixer {name} {dtype}"
            rows += [(f"{label} out", mixer["out"], tol), (f"{label} grads", mixer["grads"][0], tol)]
    leak = eq.scan_without_seq_idx_error(device="cuda")
    return _ratio_verdict(rows, leak, f"real kernels on {torch.cuda.get_device_name()}")


def _on_interpreter() -> CheckResult:
    from verl_falcon_plugin.models.falcon_h1.gpu_path_equivalence import FP32_TOLERANCE

    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, "-m", "verl_falcon_plugin.testing.mamba_interpreter"],
        env=env,
        capture_output=True,
        text=True,
        timeout=INTERPRETER_TIMEOUT_S,
    )
    if done.returncode != 0:
        return CheckResult.failed(f"the interpreter run failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    scope = "no CUDA: mamba_ssm's Triton scan on the Triton interpreter, fwd + bwd (causal_conv1d is CUDA C++: not run)"
    return _ratio_verdict(_scan_rows(report["scan"], "scan fp32", FP32_TOLERANCE), report["no_seq_idx"], scope)


@register_check("falcon_h1.gpu_path", area="models")
def gpu_path() -> CheckResult:
    missing = [m for m in ("torch", "transformers", "triton") if not is_available(m)]
    if missing:
        return CheckResult.skipped(f"{', '.join(missing)} not installed: pip install 'verl-falcon-plugin[verl,liger]'")
    import torch

    kernels = [m for m in ("mamba_ssm", "causal_conv1d") if importlib.util.find_spec(m) is not None]
    if torch.cuda.is_available():
        if len(kernels) < 2:
            return CheckResult.skipped(
                "mamba_ssm / causal_conv1d not installed: pip install 'verl-falcon-plugin[cuda]'"
            )
        return _on_gpu()
    if "mamba_ssm" not in kernels:
        return CheckResult.skipped(
            "no CUDA GPU, and mamba_ssm is not installed for the Triton interpreter (scripts/build_venv.sh installs "
            "it from its sdist without the CUDA build; see CONTRIBUTING.md)"
        )
    return _on_interpreter()
