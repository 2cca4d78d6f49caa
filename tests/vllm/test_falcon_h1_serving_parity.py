"""vLLM's Falcon-H1 against transformers' on the same tiny checkpoint: prefill log-probs agree for
Falcon-H1R's mixer setting and disagree for the one `vllm_serving_mismatches` flags.

This is the evidence behind the preflight's `falcon_h1.vllm_serving_parity` check.
"""

from __future__ import annotations

import gc
import os

import pytest

os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

torch = pytest.importorskip("torch")
vllm = pytest.importorskip("vllm")

from verl_falcon_plugin.models.falcon_h1.serving import vllm_serving_mismatches  # noqa: E402
from verl_falcon_plugin.testing import tiny_falcon_h1  # noqa: E402

PROMPT = [5, 17, 33, 80, 9, 120, 44, 3, 71, 200, 15, 16, 150, 99, 7, 61, 62, 63, 11, 240]
AGREE = 1e-4  # fp32 on both sides; measured ~1e-6
DISAGREE = 1e-2  # measured ~0.9


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


@pytest.mark.parametrize("norm_before_gate", [False, True])
def test_vllm_serves_exactly_the_configs_not_flagged(tmp_path, norm_before_gate: bool) -> None:
    model = tiny_falcon_h1(mamba_rms_norm=True, mamba_norm_before_gate=norm_before_gate)
    model.save_pretrained(tmp_path)
    error = max(abs(a - b) for a, b in zip(hf_prompt_logprobs(model), vllm_prompt_logprobs(str(tmp_path))))
    flagged = bool(vllm_serving_mismatches(model.config))
    assert flagged is norm_before_gate
    if flagged:
        assert error > DISAGREE
    else:
        assert error <= AGREE
