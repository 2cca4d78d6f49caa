"""`rl-data export` writes a parquet that verl's own RLHFDataset loads, with the paper's system prompt."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from verl_falcon_plugin.data.jsonl_io import MalformedRowError
from verl_falcon_plugin.data.rl_export import ExportConfig, export_parquet
from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT

ROWS = [
    {"id": "a", "prompt": "What is 2+3?", "ground_truth": "5", "data_source": "math_synthetic",
     "sft_solve_rate": 0.25, "filter_decision": "kept_partially_solved", "problem_line": 1},
    {"id": "b", "prompt": "Solve x+1=3.", "ground_truth": "2", "data_source": "math_synthetic",
     "sft_solve_rate": 0.0, "filter_decision": "kept_unsolved_inconsistent", "problem_line": 4},
]  # fmt: skip


def rlhf_dataset(path, tokenizer, max_prompt_length=512):
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create({"max_prompt_length": max_prompt_length, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1,
                               "cache_dir": str(path.parent / "cache")})  # fmt: skip
    return RLHFDataset(data_files=str(path), tokenizer=tokenizer, config=config)


@pytest.fixture(scope="module")
def tokenizer():
    from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer

    return build_chat_tokenizer()


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_verl_rlhf_dataset_reads_the_export_and_the_template_renders_the_system_prompt(tmp_path, tokenizer):
    problems, out = tmp_path / "kept.jsonl", tmp_path / "train.parquet"
    write(problems, ROWS)
    summary = export_parquet(str(problems), str(out))
    assert summary == {"problems": 2, "domains": {"math": 2}, "system_prompt": True}
    dataset = rlhf_dataset(out, tokenizer)
    assert len(dataset) == 2  # none dropped by verl's length filter or its parser
    item = dataset[1]
    assert item["data_source"] == "math_synthetic" and item["reward_model"]["ground_truth"] == "2"
    assert item["extra_info"]["index"] == 1 and item["index"] == 1  # verl reads extra_info.index
    assert item["extra_info"]["question"] == "Solve x+1=3." and item["extra_info"]["domain"] == "math"
    assert item["extra_info"]["sft_solve_rate"] == 0.0
    rendered = tokenizer.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=False)
    assert rendered == (
        f"<|im_start|>system\n{PAPER_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nSolve x+1=3.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    from verl_falcon_plugin.rewards.router import compute_score  # the reward verl would call on that row

    reward = compute_score(item["data_source"], "<think>x=2</think> \\boxed{2}", item["reward_model"]["ground_truth"],
                           item["extra_info"])  # fmt: skip
    assert reward["acc"] == 1.0


def test_without_the_system_prompt_the_dataset_sees_only_the_user_turn(tmp_path, tokenizer):
    problems, out = tmp_path / "kept.jsonl", tmp_path / "train.parquet"
    write(problems, ROWS[:1])
    export_parquet(str(problems), str(out), ExportConfig(system_prompt=None))
    assert [m["role"] for m in rlhf_dataset(out, tokenizer)[0]["raw_prompt"]] == ["user"]


def test_a_row_the_reward_cannot_route_is_named_and_nothing_is_written(tmp_path):
    problems, out = tmp_path / "kept.jsonl", tmp_path / "train.parquet"
    write(problems, [ROWS[0], {**ROWS[1], "data_source": "ifbench"}])
    with pytest.raises(MalformedRowError, match=r"kept.jsonl:2: cannot route the reward"):
        export_parquet(str(problems), str(out))
    assert not out.exists()


def test_cli_export_reports_a_bad_row_in_one_line(tmp_path):
    problems, out = tmp_path / "kept.jsonl", tmp_path / "train.parquet"
    write(problems, [{"prompt": "x", "data_source": "math"}])
    run = subprocess.run([sys.executable, "-m", "verl_falcon_plugin.cli", "rl-data", "export", "--problems",
                          str(problems), "--out", str(out)], capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "kept.jsonl:1: missing field 'ground_truth'" in run.stdout + run.stderr
    assert "Traceback" not in run.stderr
