"""`make demo-quick`: every stage runs through the recipes' entry points and leaves consistent artefacts.

Runs ``python -m verl_falcon_plugin.demo --quick`` once (minutes: verl's SFT trainer under torchrun, two vLLM
servers, verl's main_ppo), then checks each stage's output against an independent reading of the logs and
against verl's own RLHFDataset. Set ``FALCON_H1R_DEMO_OUT`` to check an existing run instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
STAGES = ["task", "sft", "rollouts", "eval_sft", "deepconf", "rl_data", "grpo", "eval_grpo", "report"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON.exists(), reason="needs the vLLM environment (.venv-vllm)"),
]


def run_demo(out: Path) -> subprocess.CompletedProcess:
    # as `make demo` runs it: without the TRITON_INTERPRET=1 that tests/liger/conftest.py sets for the session
    inherited = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env = {**inherited, "VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "verl_falcon_plugin.demo", "--quick", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=3000)  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    if os.environ.get("FALCON_H1R_DEMO_OUT"):
        return Path(os.environ["FALCON_H1R_DEMO_OUT"])
    out = tmp_path_factory.mktemp("demo")
    run = run_demo(out)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return out


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric(path: Path, key: str) -> list[float]:
    return [row["data"][key] for row in jsonl(path) if key in row["data"]]


def test_every_stage_finished_and_a_rerun_redoes_nothing(demo):
    markers = {p.stem: json.loads(p.read_text()) for p in (demo / "stages").glob("*.json")}
    assert sorted(markers) == sorted(STAGES) and not list((demo / "stages").glob("*.not_run"))
    assert all(m["wall_s"] > 0 and m["peak_rss_mb"] > 0 for m in markers.values())
    before = {p.name: p.stat().st_mtime_ns for p in (demo / "stages").glob("*.json")}
    rerun = run_demo(demo)
    assert rerun.returncode == 0 and rerun.stdout.count("done earlier") == len(STAGES)
    assert before == {p.name: p.stat().st_mtime_ns for p in (demo / "stages").glob("*.json")}


def test_sft_loss_falls_and_the_merged_checkpoint_is_a_falcon_h1(demo):
    loss = metric(demo / "logs" / "sft_metrics.jsonl", "train/loss")
    assert len(loss) >= 5 and loss[-1] < loss[0]
    config = json.loads((demo / "sft_hf" / "config.json").read_text())
    assert config["model_type"] == "falcon_h1" and config["mamba_norm_before_gate"] is False
    report = (demo / "report.md").read_text()
    assert f"Loss {loss[0]:.3f}" in report and f"→ {loss[-1]:.3f}" in report  # the report's numbers are the log's


def test_rl_parquet_is_accepted_by_verls_rlhf_dataset(demo):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    kept = jsonl(demo / "rl" / "kept.jsonl")
    filter_report = json.loads((demo / "rl" / "filter_report.json").read_text())
    assert filter_report["kept"] == len(kept) > 0
    tokenizer = AutoTokenizer.from_pretrained(demo / "sft_hf")
    config = OmegaConf.create({"max_prompt_length": 256, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": str(demo / "cache")})  # fmt: skip
    dataset = RLHFDataset(data_files=str(demo / "rl" / "train.parquet"), tokenizer=tokenizer, config=config)
    assert len(dataset) == len(kept)
    assert dataset[0]["raw_prompt"][0]["content"].startswith("You are Falcon")  # the paper's system prompt
    report = (demo / "report.md").read_text()
    assert f"The filter kept **{len(kept)} of {filter_report['problems']}" in report
    assert (demo / "rl_difficulty.png").read_bytes()[:4] == b"\x89PNG"


def test_grpo_logged_every_step_with_the_real_reward(demo):
    reward = metric(demo / "logs" / "grpo_metrics.jsonl", "critic/score/mean")
    assert len(reward) == json.loads((demo / "settings.json").read_text())["grpo_steps"]
    assert f"Reward {reward[0]:.3f}" in (demo / "report.md").read_text()
    assert (demo / "grpo_hf" / "config.json").exists()
    assert "verl_falcon_plugin.rewards.router" in (demo / "logs" / "grpo.log").read_text()


def test_pass_at_1_in_the_report_is_the_eval_outputs(demo):
    report = (demo / "report.md").read_text()
    for name, label in (("eval_sft", "SFT"), ("eval_grpo", "GRPO")):
        rows = jsonl(demo / name / "synthetic_math.jsonl")
        assert all(r["rollouts"] for r in rows)
        score = 100 * sum(sum(x["reward"] >= 1 for x in r["rollouts"]) / len(r["rollouts"]) for r in rows) / len(rows)
        assert f"{label} **{score:.1f}%**" in report
    assert (demo / "pass_at_1.png").read_bytes()[:4] == b"\x89PNG"


def test_deepconf_tokens_in_the_report_are_its_results(demo):
    results = jsonl(demo / "deepconf" / "results.jsonl")
    tokens = sum(r["tokens"] for r in results)
    match = re.search(r"\): (\d+) tokens vs", (demo / "report.md").read_text())
    assert match and int(match.group(1)) == tokens > 0
