"""The paper's pipeline at toy scale, one function per stage, each through the entry point a GPU run uses.

task -> sft (verl SFT trainer, torchrun, 2 ranks, Ulysses 2) -> rollouts (vLLM serving the SFT model)
-> eval_sft + deepconf (same server) -> rl_data (dedup, filter, export) -> grpo (verl main_ppo)
-> eval_grpo -> report. Settings marked ``paper`` are the paper's; the rest are the toy scale's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from verl_falcon_plugin.demo import logs, task
from verl_falcon_plugin.demo.runner import Context, Stage, StageNotRun, copy_tokenizer

SERVED = "demo"
PAPER_TEMPERATURE, PAPER_TOP_P = 0.6, 0.95  # paper: RL-data rollouts and evaluation sampling


def stage_task(ctx: Context) -> dict[str, Any]:
    c = ctx.config
    ctx.status("writing the synthetic task")
    counts = task.write_task(ctx.out / "task", c.seed, c.sft_rows, c.rl_problems, c.eval_problems)
    ctx.status("building the tokenizer and the tiny Falcon-H1")
    task.build_base_model(ctx.out / "base", seed=c.seed, layers=c.layers)
    _write_mixture(ctx)
    (ctx.out / "task" / "benchmarks.tsv").write_text(
        "benchmark\tsamples_per_question\tmax_tokens\tdomain\tpaper_score\tsettings_from\n"
        f"synthetic_math\t{c.eval_k}\t{c.max_new_tokens}\tmath\t-\tours: the demo's held-out problems\n"
    )
    return counts


def _write_mixture(ctx: Context) -> None:
    folder = ctx.out / "task"
    sources = "\n".join(
        f"  - {{name: {tier}, probability: {p}, files: [{folder / f'sft_{tier}.jsonl'}]}}"
        for tier, p in (("easy", 0.3), ("medium", 0.35), ("hard", 0.35))
    )
    (folder / "mixture.yaml").write_text(f"""# the demo's SFT mixture (recipes/sft/mixture.yaml's keys)
seed: {ctx.config.seed}
system_prompt: paper
sources:
{sources}
filters:
  require_reasoning: true
  math_categories: [easy, medium, hard]
# paper: hard x1.25-1.75, medium x1, easy x0.5 (thresholds: recipes/sft/mixture.yaml's)
difficulty:
  enabled: true
  pass_rate_key: pass_rate
  hard_pass_rate: 0.25
  easy_pass_rate: 0.875
  hard_weight_min: 1.25
  hard_weight_max: 1.75
  easy_weight: 0.5
""")


def _cpu_platform_or_not_run(ctx: Context, what: str) -> None:
    probe = ctx.repo / "verl_falcon_plugin" / "cpu" / "__init__.py"
    if not probe.exists():
        raise StageNotRun(f"{what} needs verl's trainers on CPU (VERL_PLATFORM=cpu, issue 12), not in this checkout")


def stage_sft(ctx: Context) -> dict[str, Any]:
    _cpu_platform_or_not_run(ctx, "SFT")
    c = ctx.config
    ckpt, metrics = ctx.out / "sft_ckpt", ctx.out / "logs" / "sft_metrics.jsonl"
    steps = c.sft_samples // c.sft_batch
    env = {"VERL_PLATFORM": "cpu", "VERL_FILE_LOGGER_PATH": str(metrics), "OMP_NUM_THREADS": "1"}
    ctx.sh([
        ctx.python.parent / "torchrun", "--standalone", "--nproc_per_node=2", "-m", "verl_falcon_plugin.data.run_sft",
        f"model.path={ctx.out / 'base'}", "model.use_remove_padding=true", "model.use_liger=false",
        "+model.override_config.attn_implementation=sdpa",
        "engine.ulysses_sequence_parallel_size=2", "engine.dtype=float32", "engine.strategy=fsdp2",
        f"optim.lr={c.sft_lr}", "optim.lr_warmup_steps_ratio=0.04", "optim.lr_scheduler_type=linear",  # paper
        "optim.weight_decay=0.01", "optim.clip_grad=1.0",  # paper
        f"data.train_batch_size={c.sft_batch}", f"data.micro_batch_size_per_gpu={c.sft_batch}",
        f"data.max_length={c.max_length}", "data.truncation=right", "data.pad_mode=no_padding",
        "data.use_dynamic_bsz=true", "data.max_token_len_per_gpu=8192", "data.num_workers=0", "data.train_files=[]",
        "data.custom_cls.path=pkg://verl_falcon_plugin.data.streaming_sft", "data.custom_cls.name=StreamingSFTDataset",
        f"+data.streaming.mixture_file={ctx.out / 'task' / 'mixture.yaml'}",
        f"+data.streaming.samples_per_epoch={c.sft_samples}", "data.balance_dp_token=true",
        "trainer.total_epochs=1", f"trainer.default_local_dir={ckpt}", "trainer.project_name=falcon-h1r-demo",
        "trainer.experiment_name=sft", "trainer.logger=[console,file]", f"trainer.save_freq={steps}",
        "trainer.test_freq=-1", "trainer.device=cpu", "trainer.resume_mode=disable", f"trainer.seed={c.seed}",
    ], "sft", env=env)  # fmt: skip
    _merge(ctx, ckpt, ctx.out / "sft_hf", "sft")
    loss = logs.series(metrics, "train/loss")
    if not loss:
        raise logs.LogError(f"{metrics} has no train/loss: did the SFT trainer log?")
    return {"steps": len(loss), "loss_first": loss[0][1], "loss_last": loss[-1][1]}


def _merge(ctx: Context, ckpt_root: Path, target: Path, log: str, subdir: str = "") -> None:
    """verl's own model merger on the last checkpoint, then the base tokenizer next to the weights."""
    steps = sorted(ckpt_root.glob("global_step_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not steps:
        raise logs.LogError(f"no checkpoint under {ckpt_root}")
    ctx.status(f"merging {steps[-1].name} with verl.model_merger")
    ctx.sh([ctx.python, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
            "--local_dir", steps[-1] / subdir if subdir else steps[-1], "--target_dir", target], log)  # fmt: skip
    copy_tokenizer(ctx.out / "base", target)


def stage_rollouts(ctx: Context) -> dict[str, Any]:
    c = ctx.config
    url = ctx.server("sft_hf")
    out = ctx.out / "rl" / "rollouts.jsonl"
    ctx.sh([ctx.vllm_bin / "falcon-h1r", "rl-data", "rollouts", "--problems", ctx.out / "task" / "rl_problems.jsonl",
            "--out", out, "--server-url", url, "--served-model", SERVED, "--n", c.rollouts_n,  # paper: 8
            "--temperature", PAPER_TEMPERATURE, "--top-p", PAPER_TOP_P, "--max-tokens", c.max_new_tokens,
            "--system-prompt", "paper", "--concurrency", 4, "--keep-text"], "rollouts")  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rewards = [r["reward"] for row in rows for r in row["rollouts"]]
    solved = sum(x >= 1 for x in rewards) / len(rewards)
    return {"problems": len(rows), "rollouts": len(rewards), "solved_share": round(solved, 4)}


def _eval(ctx: Context, model_rel: str, name: str) -> dict[str, Any]:
    url = ctx.server(model_rel)
    data = ctx.out / "task" / "eval_data"
    data.mkdir(exist_ok=True)
    (data / "synthetic_math.jsonl").write_text((ctx.out / "task" / "eval.jsonl").read_text())
    env = {"DATA": str(data), "OUT": str(ctx.out / name), "SERVER": url, "SERVED": SERVED,
           "BENCHMARKS": str(ctx.out / "task" / "benchmarks.tsv"), "FALCON_H1R": str(ctx.vllm_bin / "falcon-h1r"),
           "PYTHON": str(ctx.vllm_python)}  # fmt: skip
    ctx.sh(["bash", ctx.repo / "recipes" / "eval" / "run_eval.sh"], name, env=env)  # paper: T 0.6, top-p 0.95
    return {"pass_at_1": logs.pass_at_1(ctx.out / name / "synthetic_math.jsonl")}


def stage_eval_sft(ctx: Context) -> dict[str, Any]:
    return _eval(ctx, "sft_hf", "eval_sft")


def stage_eval_grpo(ctx: Context) -> dict[str, Any]:
    return _eval(ctx, "grpo_hf", "eval_grpo")


def stage_deepconf(ctx: Context) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT

    c = ctx.config
    url = ctx.server("sft_hf")
    tokenizer = AutoTokenizer.from_pretrained(ctx.out / "sft_hf")
    rows = [json.loads(line) for line in (ctx.out / "task" / "eval.jsonl").read_text().splitlines()]
    problems = ctx.out / "task" / "deepconf.jsonl"
    with problems.open("w") as handle:
        for row in rows[: c.deepconf_problems]:
            messages = [{"role": "system", "content": PAPER_SYSTEM_PROMPT}, {"role": "user", "content": row["prompt"]}]
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            handle.write(json.dumps({"id": row["id"], "prompt": prompt, "answer": row["ground_truth"]}) + "\n")
    out = ctx.out / "deepconf"
    ctx.sh([ctx.vllm_bin / "falcon-h1r", "deepconf", "run", problems, "--out", out, "--server", url.removesuffix("/v1"),
            "--served-model", SERVED, "--config", ctx.repo / "recipes" / "tts" / "deepconf.yaml",
            "--budget", c.deepconf_budget, "--n-init", c.deepconf_n_init, "--eta", 0.1,  # paper: eta 10%
            "--window", c.deepconf_window, "--batch-size", 16, "--max-tokens", c.max_new_tokens, "--top-k", 5,
            "--temperature", PAPER_TEMPERATURE, "--top-p", PAPER_TOP_P, "--plots", 1], "deepconf")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    return {"tokens": summary["tokens"], "tokens_saved_fraction": round(summary["tokens_saved_fraction"], 4),
            "accuracy": summary["accuracy"]}  # fmt: skip


def stage_rl_data(ctx: Context) -> dict[str, Any]:
    rl, cli = ctx.out / "rl", ctx.python.parent / "falcon-h1r"  # the verl environment has the [data] extra
    sft_files = sorted((ctx.out / "task").glob("sft_*.jsonl"))
    ctx.sh([cli, "rl-data", "dedup", "--rl", rl / "rollouts.jsonl", "--sft", *sft_files, "--out", rl / "deduped.jsonl",
            "--report", rl / "dedup_report.json", "--no-progress"], "rl_data")  # fmt: skip
    ctx.sh([cli, "rl-data", "filter", "--rollouts", rl / "deduped.jsonl", "--out", rl / "kept.jsonl",
            "--report", rl / "filter_report.json", "--plot", ctx.out / "rl_difficulty.png",
            "--rollouts-per-problem", ctx.config.rollouts_n, "--no-progress"], "rl_data")  # fmt: skip
    ctx.sh([cli, "rl-data", "export", "--problems", rl / "kept.jsonl", "--out", rl / "train.parquet"], "rl_data")
    dedup = json.loads((rl / "dedup_report.json").read_text())
    report = json.loads((rl / "filter_report.json").read_text())
    return {"deduped_dropped": dedup["dropped"], "filter_input": report["problems"], "kept": report["kept"],
            "kept_share": round(report["kept"] / max(1, report["problems"]), 4)}  # fmt: skip


def stage_grpo(ctx: Context) -> dict[str, Any]:
    _cpu_platform_or_not_run(ctx, "GRPO")
    c = ctx.config
    ckpt, metrics = ctx.out / "grpo_ckpt", ctx.out / "logs" / "grpo_metrics.jsonl"
    train = ctx.out / "rl" / "train.parquet"
    ray_dir = tempfile.mkdtemp(prefix="fh1r-ray-", dir="/tmp")  # Ray's socket paths must stay short
    env = {"VERL_PLATFORM": "cpu", "VERL_FILE_LOGGER_PATH": str(metrics), "OMP_NUM_THREADS": "1"}
    try:
        ctx.sh([
            ctx.python, "-m", "verl.trainer.main_ppo", "+plugin=falcon_h1r_cpu",
            f"actor_rollout_ref.model.path={ctx.out / 'sft_hf'}",
            f"data.train_files={train}", f"data.val_files={train}",
            f"data.train_batch_size={c.grpo_batch}", "data.max_prompt_length=256",
            f"data.max_response_length={c.max_new_tokens}",
            f"actor_rollout_ref.rollout.n={c.grpo_n}", f"actor_rollout_ref.actor.ppo_mini_batch_size={c.grpo_batch}",
            "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8", "actor_rollout_ref.actor.use_dynamic_bsz=false",
            f"actor_rollout_ref.actor.optim.lr={c.grpo_lr}", "actor_rollout_ref.actor.optim.lr_warmup_steps=0",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
            "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=8",
            f"trainer.total_training_steps={c.grpo_steps}", f"trainer.save_freq={c.grpo_steps}", "trainer.test_freq=-1",
            "trainer.val_before_train=false", "trainer.logger=[console,file]", f"trainer.default_local_dir={ckpt}",
            "trainer.project_name=falcon-h1r-demo", "trainer.experiment_name=grpo", "trainer.resume_mode=disable",
            f"+ray_kwargs.ray_init._temp_dir={ray_dir}",
        ], "grpo", env=env, timeout_s=1800)  # fmt: skip
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)  # Ray's session files (its processes are gone with the group)
    _merge(ctx, ckpt, ctx.out / "grpo_hf", "grpo_merge", subdir="actor")
    reward = logs.series(metrics, logs.GRPO_REWARD)
    length = logs.series(metrics, logs.GRPO_LENGTH)
    if not reward:
        raise logs.LogError(f"{metrics} has no {logs.GRPO_REWARD}: did the GRPO trainer log?")
    return {"steps": len(reward), "reward_first": reward[0][1], "reward_last": reward[-1][1],
            "response_length_first": length[0][1] if length else None,
            "response_length_last": length[-1][1] if length else None}  # fmt: skip


def stage_report(ctx: Context) -> dict[str, Any]:
    from verl_falcon_plugin.demo.report import write_report

    path = write_report(ctx.out, ctx.config)
    return {"report": str(path.relative_to(ctx.out))}


STAGES = [
    Stage("task", "task, tokenizer and tiny Falcon-H1 (built in code)", stage_task, outputs=("task", "base")),
    Stage("sft", "SFT: verl's trainer, 2 ranks, Ulysses SP=2, packed, streaming mixture", stage_sft, ("task",),
          outputs=("sft_ckpt", "sft_hf", "logs/sft_metrics.jsonl")),
    Stage("rollouts", "RL data: 8 rollouts per problem on vLLM serving the SFT model", stage_rollouts, ("sft",),
          serves="sft_hf", outputs=("rl/rollouts.jsonl", "rl/rollouts.jsonl.meta.json")),
    Stage("eval_sft", "evaluation of the SFT model (recipes/eval, T=0.6, top-p 0.95)", stage_eval_sft, ("sft",),
          serves="sft_hf", outputs=("eval_sft",)),
    Stage("deepconf", "DeepConf online on vLLM (falcon-h1r deepconf run)", stage_deepconf, ("sft",), serves="sft_hf",
          outputs=("deepconf",)),
    Stage("rl_data", "RL data: dedup, difficulty filter, export to verl's parquet", stage_rl_data, ("rollouts",),
          outputs=("rl/deduped.jsonl", "rl/kept.jsonl", "rl/train.parquet")),
    Stage("grpo", "GRPO: verl main_ppo +plugin=falcon_h1r_cpu, real reward router", stage_grpo, ("rl_data",),
          outputs=("grpo_ckpt", "grpo_hf", "logs/grpo_metrics.jsonl")),
    Stage("eval_grpo", "evaluation of the GRPO model", stage_eval_grpo, ("grpo",), serves="grpo_hf",
          outputs=("eval_grpo",)),
    Stage("report", "report: report.md and plots", stage_report),
]  # fmt: skip


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def vllm_env_ok(python: Path) -> None:
    if not python.exists() or not os.access(python, os.X_OK):
        raise SystemExit(f"the vLLM environment's python {python} is missing: `make venvs`, or pass --vllm-python")
