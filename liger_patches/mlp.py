"""Falcon-H1's SwiGLU MLP on Liger's fused SiLU-mul kernel, exact with both µP multipliers and biases.

HF computes ``down_proj(up_proj(x) * silu(gate_proj(x) * gate_mult)) * down_mult``.
Liger 0.8.5's ``LigerFalconH1SwiGLUMLP`` folds ``down_mult`` into the kernel's
output, *before* ``down_proj``: that scales ``down_proj.bias`` by ``down_mult``
too, so it is wrong when ``mlp_bias=True``. Here ``gate_mult`` stays inside the
kernel (it must: it sits inside the SiLU) and ``down_mult`` is applied after
``down_proj``, in HF's order, which is exact with or without biases. The output
multiply is on ``hidden_size`` features rather than ``intermediate_size``, so it
is also the cheaper place for it.
"""

from __future__ import annotations

import torch
from liger_kernel.ops import LigerSiLUMulFunction
from torch import nn


def check_swiglu_activation(config) -> None:
    if config.hidden_act not in ("silu", "swish"):
        raise ValueError(
            f"Liger SwiGLU supports hidden_act 'silu'/'swish', the config has {config.hidden_act!r}: "
            f"pass swiglu=False to apply_liger_kernel_to_falcon_h1"
        )


def liger_falcon_h1_mlp_forward(self, x: torch.Tensor) -> torch.Tensor:
    """``FalconH1MLP.forward`` on the fused kernel; reads the multipliers from the module (set by HF)."""
    activated = LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x), float(self.gate_multiplier), 1.0)
    return self.down_proj(activated) * self.down_multiplier


class LigerFalconH1MLP(nn.Module):
    """Drop-in replacement for ``FalconH1MLP``: same constructor, attributes and ``state_dict``."""

    def __init__(self, config):
        super().__init__()
        check_swiglu_activation(config)
        self.config = config
        self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.gate_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(self.hidden_size, self.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(self.intermediate_size, self.hidden_size, bias=config.mlp_bias)
        self.gate_multiplier, self.down_multiplier = config.mlp_multipliers

    forward = liger_falcon_h1_mlp_forward
