"""``falcon-h1r deepconf run``: DeepConf online over a JSONL of problems, against vLLM.

Input rows: ``prompt`` (used as is) or ``problem`` (wrapped in the model's chat
template with :data:`INSTRUCTION`), and ``answer`` (or ``ground_truth``); ``id`` optional.
The engine is an offline ``vllm.LLM`` (``--model``) or an OpenAI-compatible vLLM
server (``--server URL``); either way traces opt in to early stop through the flat
``deepconf_*`` extra args, so the server needs this package installed (the
``vllm.logits_processors`` entry point) and nothing else.

Outputs in ``--out DIR``: ``results.jsonl`` (one row per problem: threshold, votes,
tokens, traces stopped), ``summary.json`` and ``summary.md`` (accuracy per voting
method, tokens generated, estimated tokens saved, traces stopped) and
``confidence_<id>.png`` (each trace's sliding group confidence with the threshold)
for the first ``--plots`` problems. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from verl_falcon_plugin.requires import require
from vllm_plugins.deepconf.answers import extract_answer
from vllm_plugins.deepconf.confidence import sliding_group_confidence, token_confidence, topk_from_vllm_logprobs
from vllm_plugins.deepconf.online import OnlineConfig, OnlineResult, Trace, expected_full_tokens, run_online, stop_index
from vllm_plugins.deepconf.request_args import DeepConfArgs
from vllm_plugins.deepconf.voting import VOTING_METHODS

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class SamplingSettings:
    """The paper's generation settings (Sec. 5.1) by default."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 65536
    top_k_logprobs: int = 20
    seed: int | None = None


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    answer: str | None


def _trace_from_logprobs(steps: Sequence[Any], text: str, threshold: float | None, window: int, k: int) -> Trace:
    confs = np.array([token_confidence(topk_from_vllm_logprobs(step, k)) for step in steps])
    if confs.size == 0:
        raise RuntimeError("the engine returned a trace without logprobs: request logprobs>=k")
    stopped = threshold is not None and stop_index(confs, threshold, window) == len(confs) - 1
    return Trace(confs, None if stopped else extract_answer(text), stopped, text)


class OfflineVLLMGenerator:
    """Traces from an in-process ``vllm.LLM`` (the entry point's processor does the stopping)."""

    def __init__(self, llm: Any, prompt: str, sampling: SamplingSettings):
        self.llm, self.prompt, self.sampling = llm, prompt, sampling

    def generate(self, num_traces: int, threshold: float | None, window: int) -> list[Trace]:
        vllm = require("vllm", "falcon-h1r deepconf run")
        s = self.sampling
        extra = None if threshold is None else DeepConfArgs(threshold, window, s.top_k_logprobs).as_extra_args()
        params = vllm.SamplingParams(
            n=num_traces,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            logprobs=s.top_k_logprobs,
            seed=s.seed,
            extra_args=extra,
        )
        (request,) = self.llm.generate([self.prompt], params, use_tqdm=False)
        return [_trace_from_logprobs(o.logprobs, o.text, threshold, window, s.top_k_logprobs) for o in request.outputs]


class ServerGenerator:
    """Traces from an OpenAI-compatible vLLM server (``/v1/completions`` with ``vllm_xargs``)."""

    def __init__(self, url: str, model: str, prompt: str, sampling: SamplingSettings, timeout_s: float = 3600):
        self.url = url.rstrip("/") + "/v1/completions"
        self.model, self.prompt, self.sampling, self.timeout_s = model, prompt, sampling, timeout_s

    def payload(self, num_traces: int, threshold: float | None, window: int) -> dict[str, Any]:
        s = self.sampling
        body: dict[str, Any] = dict(
            model=self.model,
            prompt=self.prompt,
            n=num_traces,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            logprobs=s.top_k_logprobs,
        )
        if s.seed is not None:
            body["seed"] = s.seed
        if threshold is not None:
            body["vllm_xargs"] = DeepConfArgs(threshold, window, s.top_k_logprobs).as_extra_args()
        return body

    def generate(self, num_traces: int, threshold: float | None, window: int) -> list[Trace]:
        import requests

        response = requests.post(self.url, json=self.payload(num_traces, threshold, window), timeout=self.timeout_s)
        if response.status_code != 200:
            raise RuntimeError(f"{self.url} answered {response.status_code}: {response.text[:500]}")
        choices = sorted(response.json()["choices"], key=lambda c: c["index"])
        k = self.sampling.top_k_logprobs
        return [_trace_from_logprobs(c["logprobs"]["top_logprobs"], c["text"], threshold, window, k) for c in choices]


def load_problems(path: str | Path, tokenizer: Any | None = None) -> list[Problem]:
    problems = []
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            answer = row.get("answer", row.get("ground_truth"))
            if "prompt" in row:
                prompt = row["prompt"]
            elif "problem" in row:
                prompt = _chat_prompt(row["problem"], tokenizer)
            else:
                raise ValueError(f"{path}:{line_no}: a problem needs a 'prompt' or a 'problem' field")
            problems.append(Problem(str(row.get("id", line_no)), prompt, None if answer is None else str(answer)))
    if not problems:
        raise ValueError(f"{path} holds no problems")
    return problems


def _chat_prompt(problem: str, tokenizer: Any | None) -> str:
    content = f"{problem}\n{INSTRUCTION}"
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return content
    messages = [{"role": "user", "content": content}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def canonical_truth(answer: str | None) -> str | None:
    return None if answer is None else extract_answer(f"\\boxed{{{answer}}}")


def problem_record(problem: Problem, result: OnlineResult) -> dict[str, Any]:
    truth = canonical_truth(problem.answer)
    return dict(
        id=problem.id,
        answer=truth,
        threshold=result.threshold,
        stop_reason=result.stop_reason,
        votes=result.votes,
        correct={m: (truth is not None and v == truth) for m, v in result.votes.items()},
        traces=len(result.traces),
        traces_stopped=result.num_stopped,
        tokens=result.total_tokens,
        tokens_full_estimate=expected_full_tokens(result),
    )


def summarise(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tokens = sum(r["tokens"] for r in records)
    full = sum(r["tokens_full_estimate"] for r in records)
    return dict(
        problems=len(records),
        accuracy={m: float(np.mean([r["correct"][m] for r in records])) for m in VOTING_METHODS},
        tokens=tokens,
        tokens_full_estimate=full,
        tokens_saved_fraction=1.0 - tokens / full if full else 0.0,
        traces=sum(r["traces"] for r in records),
        traces_stopped=sum(r["traces_stopped"] for r in records),
    )


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = ["| voting method | accuracy |", "|---|---|"]
    lines += [f"| {m} | {acc:.3f} |" for m, acc in summary["accuracy"].items()]
    lines += [
        "",
        f"problems: {summary['problems']}  traces: {summary['traces']} (stopped early: {summary['traces_stopped']})",
        f"tokens generated: {summary['tokens']}  estimated without early stop: {summary['tokens_full_estimate']:.0f}"
        f"  saved: {100 * summary['tokens_saved_fraction']:.1f}%",
    ]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def plot_confidences(result: OnlineResult, window: int, path: Path, title: str) -> None:
    """Each trace's sliding group confidence (stopped traces in red) and the threshold."""
    matplotlib = require("matplotlib", "the DeepConf confidence plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for trace in result.traces:
        curve = sliding_group_confidence(trace.confs, window) if trace.num_tokens > window else np.array([])
        if curve.size == 0:
            continue
        x = np.arange(window - 1, window - 1 + curve.size)
        warmup = any(trace is w for w in result.warmup)
        color = "tab:red" if trace.stopped_early else ("tab:blue" if warmup else "tab:green")
        ax.plot(x, curve, color=color, alpha=0.4, linewidth=0.8)
    ax.axhline(result.threshold, color="black", linestyle="--", label=f"threshold s = {result.threshold:.3f}")
    ax.set_xlabel("generated token")
    ax.set_ylabel(f"group confidence (window {window})")
    ax.set_title(f"{title}: warm-up blue, finished green, stopped red")
    ax.legend(loc="lower right")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run_problems(
    problems: Iterable[Problem],
    make_generator: Any,
    config: OnlineConfig,
    out_dir: str | Path,
    plots: int = 1,
) -> dict[str, Any]:
    """Algorithm 2 per problem; writes results.jsonl, summary.json/md and the plots; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for n, problem in enumerate(problems):
        result = run_online(make_generator(problem), config)
        records.append(problem_record(problem, result))
        if n < plots:
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in problem.id)
            plot_confidences(result, config.window, out / f"confidence_{safe}.png", f"problem {problem.id}")
    summary = summarise(records)
    summary["config"] = asdict(config)
    _atomic_write(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _atomic_write(out / "summary.md", summary_markdown(summary))
    return summary
