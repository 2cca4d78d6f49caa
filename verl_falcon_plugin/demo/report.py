"""``out/demo/report.md`` and its plots, from the stage markers and the logs (see :mod:`.logs`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from verl_falcon_plugin.demo import logs
from verl_falcon_plugin.demo.config import DemoConfig
from verl_falcon_plugin.demo.runner import load_markers
from verl_falcon_plugin.requires import require


def _plt():
    matplotlib = require("matplotlib", "the demo report's plots")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _line_plot(path: Path, title: str, panels: list[tuple[str, list[tuple[int, float]]]]) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, (label, points) in zip(axes[0], panels):
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bar_plot(path: Path, title: str, bars: dict[str, float], ylabel: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.bar(list(bars), list(bars.values()), color=["#8da0cb", "#66c2a5", "#fc8d62", "#e78ac3"][: len(bars)])
    for i, value in enumerate(bars.values()):
        ax.text(i, value, f"{value:.1f}", ha="center", va="bottom")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _deepconf_plot(path: Path, summary: dict[str, Any]) -> None:
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.bar(["majority, all K traces\n(estimated)", "DeepConf online"],
             [summary["tokens_full_estimate"], summary["tokens"]], color=["#8da0cb", "#66c2a5"])  # fmt: skip
    left.set_ylabel("generated tokens")
    methods = list(summary["accuracy"])
    right.bar(range(len(methods)), [100 * summary["accuracy"][m] for m in methods], color="#fc8d62")
    right.set_xticks(range(len(methods)), [m.replace("_", "\n") for m in methods], fontsize=7)
    right.set_ylabel("accuracy (%)")
    fig.suptitle(f"DeepConf: {100 * summary['tokens_saved_fraction']:.1f}% tokens saved")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_report(out: Path, config: DemoConfig) -> Path:
    markers = load_markers(out)
    not_run = {p.stem: p.read_text().strip() for p in (out / "stages").glob("*.not_run")}
    lines = ["# Falcon-H1R pipeline at toy scale (CPU)", "", "Every number below is read from the stage logs "
             "under `logs/`, `rl/`, `eval_*/` and `deepconf/`.", ""]  # fmt: skip
    lines += ["## Stages", "", "| stage | status | wall (s) | peak RSS (MB) |", "|---|---|---|---|"]
    from verl_falcon_plugin.demo.stages import STAGES

    for stage in STAGES:
        if stage.name in markers:
            m = markers[stage.name]
            lines.append(f"| {stage.name} | done | {m['wall_s']:.0f} | {m['peak_rss_mb']} |")
        elif stage.name in not_run:
            lines.append(f"| {stage.name} | **not run**: {not_run[stage.name]} | – | – |")
        elif stage.name != "report":
            lines.append(f"| {stage.name} | not reached | – | – |")
    total = sum(m["wall_s"] for name, m in markers.items() if name != "report")
    lines += [f"| **total** | | **{total:.0f}** | |", ""]
    lines += _sft_section(out, markers)
    lines += _rl_data_section(out, markers)
    lines += _grpo_section(out, markers)
    lines += _eval_section(out, markers)
    lines += _deepconf_section(out, markers)
    lines += _settings_section(config)
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _sft_section(out: Path, markers: dict) -> list[str]:
    if "sft" not in markers:
        return []
    loss = logs.series(out / "logs" / "sft_metrics.jsonl", "train/loss")
    lr = logs.series(out / "logs" / "sft_metrics.jsonl", "train/lr")
    panels = [("train/loss", loss)] + ([("learning rate", lr)] if lr else [])
    _line_plot(out / "sft_loss.png", "SFT (verl SFT trainer, linear schedule, 4% warmup)", panels)
    return ["## SFT", "", f"Loss {loss[0][1]:.3f} (step {loss[0][0]}) → {loss[-1][1]:.3f} (step {loss[-1][0]}).", "",
            "![SFT loss](sft_loss.png)", ""]  # fmt: skip


def _rl_data_section(out: Path, markers: dict) -> list[str]:
    if "rl_data" not in markers:
        return []
    dedup = json.loads((out / "rl" / "dedup_report.json").read_text())
    report = json.loads((out / "rl" / "filter_report.json").read_text())
    share = report["kept"] / max(1, report["problems"])
    dropped = f"Dedup against the SFT data dropped {dedup['dropped']} of {dedup['problems']} problems."
    lines = ["## RL data", "", dropped,
             f"The filter kept **{report['kept']} of {report['problems']} ({100 * share:.0f}%)**:", ""]  # fmt: skip
    lines += [f"- {decision}: {count}" for decision, count in report["decisions"].items()]
    return lines + ["", "![RL difficulty](rl_difficulty.png)", ""]


def _grpo_section(out: Path, markers: dict) -> list[str]:
    if "grpo" not in markers:
        return []
    metrics = out / "logs" / "grpo_metrics.jsonl"
    reward, length = logs.series(metrics, logs.GRPO_REWARD), logs.series(metrics, logs.GRPO_LENGTH)
    panels = [("reward (mean)", reward), ("response length (tokens)", length)]
    _line_plot(out / "grpo.png", "GRPO (verl main_ppo)", panels)
    first_length, last_length = (length[0][1], length[-1][1]) if length else (None, None)
    return ["## GRPO", "", f"Reward {reward[0][1]:.3f} (step {reward[0][0]}) → {reward[-1][1]:.3f} "
            f"(step {reward[-1][0]}); response length {_fmt(first_length, 1)} → {_fmt(last_length, 1)}.",
            "", "![GRPO](grpo.png)", ""]  # fmt: skip


def _eval_section(out: Path, markers: dict) -> list[str]:
    scores = {}
    for name, label in (("eval_sft", "SFT"), ("eval_grpo", "GRPO")):
        if name in markers:
            scores[label] = logs.pass_at_1(out / name / "synthetic_math.jsonl")
    if not scores:
        return []
    _bar_plot(out / "pass_at_1.png", "pass@1, held-out problems (T=0.6, top-p 0.95)", scores, "pass@1 (%)")
    rows = " · ".join(f"{k} **{v:.1f}%**" for k, v in scores.items())
    return ["## Evaluation", "", f"pass@1: {rows}", "", "![pass@1](pass_at_1.png)", ""]


def _deepconf_section(out: Path, markers: dict) -> list[str]:
    if "deepconf" not in markers:
        return []
    summary = json.loads((out / "deepconf" / "summary.json").read_text())
    _deepconf_plot(out / "deepconf.png", summary)
    accuracy = ", ".join(f"{m} {100 * a:.1f}%" for m, a in summary["accuracy"].items())
    return ["## DeepConf", "", f"{summary['problems']} problems, {summary['traces']} traces "
            f"({summary['traces_stopped']} stopped early): {summary['tokens']} tokens vs "
            f"{summary['tokens_full_estimate']:.0f} estimated without early stop "
            f"(**{100 * summary['tokens_saved_fraction']:.1f}% saved**). Accuracy by vote: {accuracy}.", "",
            "![DeepConf](deepconf.png)", ""]  # fmt: skip


def _settings_section(c: DemoConfig) -> list[str]:
    """The paper's value next to the demo's, for every setting the toy scale changes or keeps."""
    rows = [
        ("SFT schedule", "linear, 4% warmup", "linear, 4% warmup"),
        ("SFT Ulysses SP / packing", "2 / packed", "2 / packed"),
        ("SFT weight decay / grad clip", "0.01 / 1.0", "0.01 / 1.0"),
        ("SFT lr / batch", "1024e-6 (µP) / 512", f"{c.sft_lr} / {c.sft_batch}"),
        ("RL-data rollouts per problem, T, top-p", "8, 0.6, 0.95", f"{c.rollouts_n}, 0.6, 0.95"),
        ("RL-data max new tokens", "32K", str(c.max_new_tokens)),
        ("GRPO group G / batch", "16 / 128", f"{c.grpo_n} / {c.grpo_batch}"),
        ("GRPO lr / warmup", "2e-6 / 10 steps", f"{c.grpo_lr} / 0 (only {c.grpo_steps} steps)"),
        ("GRPO clip, KL, entropy, TIS", "0.2/0.28, 0, 0, cap 2", "same (plugin/falcon_h1r.yaml)"),
        ("GRPO rollout temperature / top-p", "0.85 / not given", "0.85 / 1.0 (verl's default)"),
        ("evaluation T / top-p / k", "0.6 / 0.95 / 1-16", f"0.6 / 0.95 / {c.eval_k}"),
        ("DeepConf K / N_init / eta / window", "512 / 16 / 10% / 2048",
         f"{c.deepconf_budget} / {c.deepconf_n_init} / 10% / {c.deepconf_window}"),
    ]  # fmt: skip
    lines = ["## Settings: paper vs this demo", "", "| setting | paper | demo |", "|---|---|---|"]
    lines += [f"| {name} | {paper} | {demo} |" for name, paper, demo in rows]
    return lines + ["", "```json", json.dumps(c.as_dict(), indent=1), "```", ""]
