"""A tiny Falcon-H1 on a packed row vs the same sequences one at a time; prints JSON.

Run with ``PYTHONPATH`` at a copy of transformers' ``src`` (patched or not). Reported per
``mamba_norm_before_gate`` value: the largest logit and gradient differences per sequence, and what the fused
(mamba_ssm) path hands its kernel, recorded by a stand-in for ``mamba_split_conv1d_scan_combined`` (the kernel
itself needs CUDA).
"""

from __future__ import annotations

import json

import torch
import transformers
from transformers import FalconH1Config, FalconH1ForCausalLM
from transformers.models.falcon_h1 import modeling_falcon_h1

LENGTHS = (5, 11, 7)  # with chunk_size 4, sequences start and end inside scan chunks


def tiny_config(norm_before_gate: bool) -> FalconH1Config:
    return FalconH1Config(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        mamba_n_heads=4,
        mamba_d_head=8,
        mamba_d_ssm=32,
        mamba_n_groups=2,
        mamba_d_state=8,
        mamba_d_conv=4,
        mamba_chunk_size=4,
        mamba_rms_norm=True,
        mamba_norm_before_gate=norm_before_gate,
        # µP multipliers away from 1, so a dropped one shows
        embedding_multiplier=1.3,
        lm_head_multiplier=0.7,
        ssm_in_multiplier=1.2,
        ssm_out_multiplier=0.8,
        ssm_multipliers=[0.9, 1.1, 1.2, 0.8, 1.3],
        attention_in_multiplier=0.9,
        attention_out_multiplier=1.1,
        key_multiplier=1.2,
        mlp_multipliers=[0.8, 1.4],
        use_cache=False,
        attn_implementation="sdpa",
    )


def randomize(model: torch.nn.Module) -> None:
    """Make every parameter count (default init leaves norms at 1 and biases at 0)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "A_log" in name:
                parameter.uniform_(-1.0, 1.0)
            elif "dt_bias" in name:
                parameter.uniform_(-2.0, 0.5)
            else:
                parameter.add_(torch.randn_like(parameter) * 0.2)


def logits_and_grads(model, input_ids, position_ids, weights):
    model.zero_grad()
    logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    (logits * weights).sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    return logits.detach(), grads


def compare(norm_before_gate: bool) -> dict:
    torch.manual_seed(0)
    config = tiny_config(norm_before_gate)
    model = FalconH1ForCausalLM(config).float()
    randomize(model)
    sequences = [torch.randint(0, config.vocab_size, (1, n)) for n in LENGTHS]
    weights = [torch.randn(1, n, config.vocab_size) for n in LENGTHS]

    separate = [logits_and_grads(model, s, None, w) for s, w in zip(sequences, weights)]
    packed_ids = torch.cat(sequences, dim=1)
    packed_positions = torch.cat([torch.arange(n) for n in LENGTHS])[None]
    packed_logits, packed_grads = logits_and_grads(model, packed_ids, packed_positions, torch.cat(weights, dim=1))

    logit_errors = [
        (packed - alone[0]).abs().max().item() for packed, alone in zip(packed_logits.split(LENGTHS, dim=1), separate)
    ]
    summed = {name: sum(alone[1][name] for alone in separate) for name in packed_grads}
    grad_error = max((packed_grads[name] - summed[name]).abs().max().item() for name in packed_grads)
    return {
        "logit_errors": logit_errors,
        "grad_error": grad_error,
        "grad_scale": max(g.abs().max().item() for g in summed.values()),
        "logit_scale": packed_logits.abs().max().item(),
        "fused_kernel_arguments": fused_kernel_arguments(model, packed_positions),
        "seq_idx": derived_seq_idx(packed_positions),
    }


def fused_kernel_arguments(model, position_ids) -> dict:
    """What the training (fused) CUDA path passes to mamba_split_conv1d_scan_combined."""
    recorded = {}

    def recorder(zxbcdt, *args, **kwargs):
        recorded.update(kwargs)
        return torch.zeros(*zxbcdt.shape[:2], model.config.hidden_size)

    mixer = model.model.layers[0].mamba.train()
    modeling_falcon_h1.mamba_split_conv1d_scan_combined = recorder  # set at the mixer's __init__
    hidden = torch.randn(1, position_ids.shape[-1], model.config.hidden_size)
    seq_idx = (torch.cumsum(position_ids == 0, dim=-1) - 1).to(torch.int32)
    try:
        mixer.cuda_kernels_forward(hidden, None, None, seq_idx)
    except TypeError:  # the unpatched signature has no seq_idx
        mixer.cuda_kernels_forward(hidden, None, None)
    passed = recorded["seq_idx"]
    return {
        "seq_idx": None if passed is None else passed.tolist(),
        "norm_before_gate": recorded["norm_before_gate"],
    }


def derived_seq_idx(position_ids) -> dict | None:
    derive = getattr(modeling_falcon_h1, "get_packed_seq_idx", None)
    if derive is None:
        return None
    cu_seq_lens = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
    return {
        "from_position_ids": derive(position_ids).tolist(),
        "from_cu_seq_lens": derive(None, cu_seq_lens).tolist(),
        "unpacked": derive(torch.arange(9)[None]),
    }


def main() -> None:
    results = {str(flag): compare(flag) for flag in (False, True)}
    print(json.dumps({"transformers": transformers.__file__, "by_norm_before_gate": results}))


if __name__ == "__main__":
    main()
