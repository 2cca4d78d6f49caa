"""Liger's Falcon-H1 patch vs transformers: the mixer's gated RMSNorm, and what instance patching touches; JSON.

Run with ``PYTHONPATH`` at a copy of Liger's ``src`` (patched or not) and ``TRITON_INTERPRET=1`` on a machine
without a GPU (the project's interpreter shim covers Liger's RMSNorm and SwiGLU kernels there).
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INTERPRETER_SHIM = REPO / "tests" / "liger" / "conftest.py"


def install_interpreter_shim() -> None:
    spec = importlib.util.spec_from_file_location("liger_interpreter_shim", INTERPRETER_SHIM)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def max_abs_diff(a, b) -> float:
    return (a - b).abs().max().item()


def compare_norm(norm_before_gate: bool) -> dict | None:
    """LigerRMSNormGated vs FalconH1RMSNormGated, forward and backward (input, gate, weight)."""
    import torch
    from transformers.models.falcon_h1.modeling_falcon_h1 import FalconH1RMSNormGated

    try:
        from liger_kernel.transformers.gated_rms_norm import LigerRMSNormGated
    except ImportError:
        return None
    torch.manual_seed(0)
    hidden, groups = 64, 2
    reference = FalconH1RMSNormGated(hidden, eps=1e-6, n_groups=groups, norm_before_gate=norm_before_gate)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
    liger = LigerRMSNormGated(hidden, eps=1e-6, n_groups=groups, norm_before_gate=norm_before_gate)
    liger.load_state_dict(reference.state_dict())
    x, gate, dy = (torch.randn(2, 7, hidden) for _ in range(3))
    outputs, grads = [], []
    for module in (reference, liger):
        leaves = [x.clone().requires_grad_(True), gate.clone().requires_grad_(True)]
        y = module(*leaves)
        outputs.append(y.detach())
        grads.append(torch.autograd.grad(y, [*leaves, module.weight], dy))
    return {
        "forward": max_abs_diff(*outputs),
        "backward": {name: max_abs_diff(a, b) for name, a, b in zip(["x", "gate", "weight"], *grads, strict=True)},
    }


def tiny_model():
    import torch
    from transformers import FalconH1Config, FalconH1ForCausalLM

    config = FalconH1Config(
        vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, mamba_n_heads=4, mamba_d_head=8, mamba_d_ssm=32, mamba_n_groups=2,
        mamba_d_state=8, mamba_chunk_size=4, mamba_rms_norm=True, mamba_norm_before_gate=False, use_cache=False,
        mlp_multipliers=[0.8, 1.4],
    )  # fmt: skip
    torch.manual_seed(0)
    model = FalconH1ForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.uniform_(0.5, 1.5)
    return model


def instance_patching() -> dict:
    """apply_liger_kernel_to_falcon_h1(model=...): what the model runs, and what the module globals became."""
    import torch
    from liger_kernel.transformers.monkey_patch import apply_liger_kernel_to_falcon_h1
    from transformers.models.falcon_h1 import modeling_falcon_h1 as modeling

    names = ("FalconH1RMSNorm", "FalconH1MLP", "FalconH1RMSNormGated")
    before = {name: getattr(modeling, name) for name in names}
    model = tiny_model()
    reference = copy.deepcopy(model)
    options = dict(model=model, rope=False, fused_linear_cross_entropy=False)  # rope is global by design
    try:
        apply_liger_kernel_to_falcon_h1(**options, gated_rms_norm=True)
    except TypeError:  # unpatched: no gated_rms_norm option
        apply_liger_kernel_to_falcon_h1(**options)
    input_ids = torch.randint(0, 64, (1, 9))
    with torch.no_grad():
        error = max_abs_diff(model(input_ids).logits, reference(input_ids).logits)
    later = tiny_model()  # built after the call, without asking for Liger
    return {
        "mixer_norm": model.model.layers[0].mamba.norm._get_name(),
        "logits_error": error,
        "globals_rewritten": sorted(name for name in names if getattr(modeling, name) is not before[name]),
        "later_model_modules": sorted(
            {type(m).__name__ for m in later.modules() if type(m).__name__.startswith("Liger")}
        ),
    }


def main() -> None:
    install_interpreter_shim()
    import liger_kernel

    results = {
        "liger": liger_kernel.__file__,
        "norm": {str(flag): compare_norm(flag) for flag in (False, True)},
        "instance": instance_patching(),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
