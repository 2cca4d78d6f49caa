"""Compare HF's FalconH1MLP with Liger's LigerFalconH1SwiGLUMLP, forward and backward; print JSON.

Run with ``PYTHONPATH`` at a copy of Liger's ``src`` (transformers stays the installed one) and
``TRITON_INTERPRET=1`` on a machine without a GPU. Prints one result per ``mlp_bias`` value (imports dominate
the run time, so both share a process).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Triton 3.9's interpreter shim for Liger's kernels, kept with the project's Liger tests.
INTERPRETER_SHIM = REPO / "tests" / "liger" / "conftest.py"

GATE_MULTIPLIER, DOWN_MULTIPLIER = 0.8, 1.7


def install_interpreter_shim() -> None:
    spec = importlib.util.spec_from_file_location("liger_interpreter_shim", INTERPRETER_SHIM)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def max_abs_diff(a, b) -> float:
    return (a - b).abs().max().item()


def compare(mlp_bias: bool) -> dict:
    import torch
    from liger_kernel.transformers.swiglu import LigerFalconH1SwiGLUMLP
    from transformers.models.falcon_h1.configuration_falcon_h1 import FalconH1Config
    from transformers.models.falcon_h1.modeling_falcon_h1 import FalconH1MLP

    config = FalconH1Config(
        hidden_size=32,
        intermediate_size=48,
        hidden_act="silu",
        mlp_bias=mlp_bias,
        mlp_multipliers=[GATE_MULTIPLIER, DOWN_MULTIPLIER],
    )
    torch.manual_seed(0)
    reference = FalconH1MLP(config)
    if mlp_bias:
        with torch.no_grad():  # nn.Linear's default biases are small: make them count
            for linear in (reference.gate_proj, reference.up_proj, reference.down_proj):
                linear.bias.normal_()
    liger = LigerFalconH1SwiGLUMLP(config)
    liger.load_state_dict(reference.state_dict())

    x = torch.randn(2, 5, config.hidden_size)
    dy = torch.randn(2, 5, config.hidden_size)
    outputs, grads = [], []
    for module in (reference, liger):
        x_leaf = x.clone().requires_grad_(True)
        y = module(x_leaf)
        inputs = [x_leaf, *module.parameters()]
        outputs.append(y.detach())
        grads.append(torch.autograd.grad(y, inputs, dy))
    expected_bias_error = (DOWN_MULTIPLIER - 1) * reference.down_proj.bias if mlp_bias else torch.zeros(1)
    names = ["x", *(name for name, _ in reference.named_parameters())]
    return {
        "forward": max_abs_diff(outputs[0], outputs[1]),
        # hf - liger against (down_mult - 1) * b: the unpatched error is exactly the bias left unscaled
        "forward_minus_bias_error": max_abs_diff(outputs[0] - outputs[1], expected_bias_error),
        "bias_error": expected_bias_error.abs().max().item(),
        "backward": {name: max_abs_diff(a, b) for name, a, b in zip(names, *grads, strict=True)},
    }


def main() -> None:
    install_interpreter_shim()
    import liger_kernel
    from liger_kernel.ops.swiglu import _swiglu_forward_kernel

    results = {
        "liger": liger_kernel.__file__,
        "kernel": type(_swiglu_forward_kernel).__name__,
        "mlp_bias": {str(mlp_bias): compare(mlp_bias) for mlp_bias in (False, True)},
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
