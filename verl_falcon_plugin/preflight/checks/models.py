"""Falcon-H1 packed sequences and Ulysses SP (``verl_falcon_plugin.models.falcon_h1``) are exact here.

Both compare the patched tiny model (12 Q / 2 KV attention heads, 24 SSM heads, µP
multipliers) with *unpatched* transformers running each sequence alone, forward and
backward, and also confirm that a control is wrong (so the check can fail): for packing,
the unpatched model on the same packed input; for Ulysses SP, verl's own generic Ulysses
attention patch with a packing-correct mixer that is not head-parallel. On a CUDA machine
the packed check runs there with the torch scan; ``falcon_h1.gpu_path`` checks the mamba_ssm /
causal_conv1d ``seq_idx`` path.
"""

from __future__ import annotations

from verl_falcon_plugin.preflight.registry import OPTIONS, CheckResult, register_check
from verl_falcon_plugin.requires import is_available, require

SP_LENGTHS = [5, 1, 13, 6]


def _missing(*modules: str) -> list[str]:
    return [m for m in modules if not is_available(m)]


def _verdict(
    logits: float, grads: float, unpatched: float, detail: str, control: str = "unpatched HF on the same input"
) -> CheckResult:
    from verl_falcon_plugin.models.falcon_h1.equivalence import GRAD_TOLERANCE, LOGITS_TOLERANCE

    detail = (
        f"{detail}: logits rel err {logits:.1e} (tol {LOGITS_TOLERANCE:g}), grads rel err {grads:.1e} "
        f"(tol {GRAD_TOLERANCE:g}); {control}: {unpatched:.1e}"
    )
    if grads > GRAD_TOLERANCE:
        return CheckResult.failed(detail)
    if unpatched <= 100 * LOGITS_TOLERANCE:
        return CheckResult.failed(f"{detail} — the control ({control}) should differ; the check proves nothing")
    return CheckResult.within(logits, LOGITS_TOLERANCE, detail)


@register_check("falcon_h1.packed", area="models")
def packed() -> CheckResult:
    missing = _missing("torch", "transformers")
    if missing:
        return CheckResult.skipped(f"{', '.join(missing)} not installed: pip install 'verl-falcon-plugin[verl]'")
    import torch

    from verl_falcon_plugin.models.falcon_h1.equivalence import DEFAULT_LENGTHS, packed_check
    from verl_falcon_plugin.models.falcon_h1.gpu_path_equivalence import torch_path_forced
    from verl_falcon_plugin.testing import REALISTIC_GEOMETRY

    device = "cuda" if torch.cuda.is_available() else "cpu"
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 would dominate an fp32 comparison
    # mamba_ssm's Triton scan multiplies fp32 in TF32 whatever torch's flag says (2e-3 on an H200), so this
    # fp32 check runs the torch scan; `falcon_h1.gpu_path` checks the kernels at their own tolerances.
    try:
        with torch_path_forced():
            result = packed_check(REALISTIC_GEOMETRY, DEFAULT_LENGTHS, device=device)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    detail = f"packed lengths {list(DEFAULT_LENGTHS)} on {device} (torch scan) vs one at a time"
    return _verdict(result.logits, result.grads, result.unpatched_logits, detail)


@register_check("falcon_h1.ulysses_sp2", area="models")
def ulysses_sp2() -> CheckResult:
    missing = _missing("torch", "transformers", "verl")
    if missing:
        return CheckResult.skipped(f"{', '.join(missing)} not installed: pip install 'verl-falcon-plugin[verl]'")
    from verl_falcon_plugin.models.falcon_h1.equivalence import sp_check
    from verl_falcon_plugin.testing import REALISTIC_GEOMETRY

    case = dict(name="realistic", sp_size=2, geometry=REALISTIC_GEOMETRY, lengths=SP_LENGTHS, attn="sdpa", seed=0)
    rows = sp_check([case], world_size=2)
    from verl_falcon_plugin.models.falcon_h1.equivalence import GRAD_TOLERANCE, LOGITS_TOLERANCE

    worst = max(rows, key=lambda r: max(r["logits"] / LOGITS_TOLERANCE, r["grads"] / GRAD_TOLERANCE))
    detail = f"2 gloo processes, verl's ulysses_pad_and_slice_inputs, lengths {SP_LENGTHS}, rank {worst['rank']}"
    control = min(r["shard_local_mixer_earlier_shard"] for r in rows)
    what = "verl's own Ulysses attention with a mixer that is not head-parallel"
    return _verdict(worst["logits"], worst["grads"], control, detail, what)


@register_check("falcon_h1.vllm_serving_parity", area="models")
def vllm_serving_parity() -> CheckResult:
    """vLLM must serve the user's Falcon-H1 config as the trainer computes it (RL rollouts come from vLLM)."""
    if OPTIONS.model_path is None:
        return CheckResult.skipped("no model given: `falcon-h1r check --model PATH` checks your config.json")
    if _missing("transformers"):
        return CheckResult.skipped("transformers not installed: pip install 'verl-falcon-plugin[verl]'")
    from verl_falcon_plugin.models.falcon_h1.serving import vllm_serving_mismatches

    transformers = require("transformers", "the vLLM serving parity check")
    config = transformers.AutoConfig.from_pretrained(OPTIONS.model_path, local_files_only=True)
    if config.model_type != "falcon_h1":
        return CheckResult.skipped(f"{OPTIONS.model_path} is a {config.model_type} model, not falcon_h1")
    mismatches = vllm_serving_mismatches(config)
    if mismatches:
        return CheckResult.failed(" ".join(mismatches))
    return CheckResult.passed(
        f"{OPTIONS.model_path}: vLLM serves this config as trained (mamba_rms_norm={config.mamba_rms_norm}, "
        f"mamba_norm_before_gate={config.mamba_norm_before_gate})"
    )
