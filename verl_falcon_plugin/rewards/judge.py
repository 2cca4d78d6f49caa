"""The science reward: an LLM judge behind OpenAI-compatible endpoints (vLLM servers).

The judge sees the question, the reference answer and the response's extracted final
answer, and must answer with exactly one verdict word. On vLLM the verdict is enforced
with structured outputs (``"structured_outputs": {"choice": [...]}``); vLLM 0.32 removed
the legacy ``guided_choice`` field and now *ignores* it (HTTP 200, unconstrained text),
so it is not sent. Parsing is strict anyway: anything but one of the choices is an error,
never a guess.

Endpoints are used round-robin from one shared cycle (thread-safe); a request that fails
on the connection, times out or gets a 5xx moves on to the next endpoint, up to
``retries`` extra attempts. A 4xx is the caller's mistake and is raised at once.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Mapping, Sequence

import requests

from verl_falcon_plugin.rewards.extract import answer_part, extract_answer
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus

DEFAULT_VERDICTS: Mapping[str, float] = {"CORRECT": 1.0, "INCORRECT": 0.0}
MAX_ANSWER_CHARS = 4000

SYSTEM_PROMPT = (
    "You grade answers to science questions. Compare the candidate's final answer with the "
    "reference answer. Judge equivalence of meaning (the same option, value or statement), not style. "
    "Reply with exactly one word: {choices}."
)
USER_TEMPLATE = (
    "Question:\n{question}\n\nReference answer:\n{reference}\n\nCandidate's final answer:\n{answer}\n\nVerdict:"
)


class JudgeError(RuntimeError):
    """The judge could not produce a verdict (unreachable, bad request, unparseable reply)."""


class JudgeUnreachableError(JudgeError):
    pass


class JudgeVerdictError(JudgeError):
    pass


def _base_url(endpoint: str) -> str:
    url = endpoint.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url[: -len("/v1")] if url.endswith("/v1") else url


def judge_messages(question: str, answer: str, reference: str, choices: Sequence[str]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(choices=" or ".join(choices))},
        {"role": "user", "content": USER_TEMPLATE.format(question=question, reference=reference, answer=answer)},
    ]


def parse_verdict(content: Any, verdicts: Mapping[str, float]) -> float:
    """The score of a reply that is exactly one verdict (surrounding whitespace allowed)."""
    if not isinstance(content, str) or content.strip() not in verdicts:
        raise JudgeVerdictError(f"judge replied {content!r}; expected exactly one of {sorted(verdicts)}")
    return float(verdicts[content.strip()])


class JudgeClient:
    """Round-robin, retrying client for OpenAI-compatible chat completion endpoints."""

    def __init__(
        self,
        endpoints: Sequence[str],
        model: str | None = None,
        *,
        timeout_s: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_tokens: int = 8,
        verdicts: Mapping[str, float] = DEFAULT_VERDICTS,
        structured_outputs: bool = True,
    ):
        if not endpoints:
            raise ValueError("JudgeClient needs at least one endpoint (http://host:port)")
        if not verdicts or not all(0.0 <= v <= 1.0 for v in verdicts.values()):
            raise ValueError(f"verdicts must map verdict words to scores in [0, 1], got {dict(verdicts)}")
        self.endpoints = [_base_url(e) for e in endpoints]
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_tokens = max_tokens
        self.verdicts = dict(verdicts)
        self.structured_outputs = structured_outputs
        self._cycle = itertools.cycle(self.endpoints)
        self._lock = threading.Lock()
        self._models: dict[str, str] = {}
        self._session = requests.Session()

    def next_endpoint(self) -> str:
        with self._lock:
            return next(self._cycle)

    def _model_for(self, endpoint: str) -> str:
        if self.model:
            return self.model
        if endpoint not in self._models:
            reply = self._session.get(f"{endpoint}/v1/models", timeout=self.timeout_s)
            reply.raise_for_status()
            data = reply.json().get("data") or []
            if not data:
                raise JudgeError(f"{endpoint}/v1/models lists no model; pass judge_model=...")
            self._models[endpoint] = data[0]["id"]
        return self._models[endpoint]

    def request_body(self, model: str, messages: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
        }
        if self.structured_outputs:
            body["structured_outputs"] = {"choice": list(self.verdicts)}
        return body

    def _ask_once(self, endpoint: str, messages: list[dict[str, str]]) -> float:
        body = self.request_body(self._model_for(endpoint), messages)
        reply = self._session.post(f"{endpoint}/v1/chat/completions", json=body, timeout=self.timeout_s)
        if 400 <= reply.status_code < 500:
            raise JudgeError(f"judge {endpoint} rejected the request ({reply.status_code}): {reply.text[:500]}")
        reply.raise_for_status()
        try:
            content = reply.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise JudgeVerdictError(f"judge {endpoint} sent no chat completion: {reply.text[:500]}") from err
        return parse_verdict(content, self.verdicts)

    def score(self, question: str, answer: str, reference: str) -> tuple[float, str]:
        """(score, endpoint that answered) for one graded answer; raises :class:`JudgeError`."""
        messages = judge_messages(question, answer, reference, list(self.verdicts))
        failures = []
        for attempt in range(self.retries + 1):
            endpoint = self.next_endpoint()
            try:
                return self._ask_once(endpoint, messages), endpoint
            except (requests.ConnectionError, requests.Timeout, requests.HTTPError) as err:
                failures.append(f"{endpoint}: {type(err).__name__}: {err}")
            except JudgeVerdictError as err:
                failures.append(str(err))  # a sampled fluke on an unconstrained server: retry elsewhere
            if attempt < self.retries:
                time.sleep(self.backoff_s * (2**attempt))
        raise JudgeUnreachableError(
            f"no verdict after {self.retries + 1} attempts over {self.endpoints}: " + " | ".join(failures)
        )


_clients: dict[tuple, JudgeClient] = {}
_clients_lock = threading.Lock()


def shared_client(endpoints: Sequence[str], model: str | None = None, **kwargs: Any) -> JudgeClient:
    """One client (hence one round-robin cycle) per configuration, shared by all threads."""
    key = (tuple(endpoints), model, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = JudgeClient(endpoints, model, **kwargs)
        return _clients[key]


def answer_for_judge(response: str) -> str:
    """The boxed final answer if any, else the (tail of the) answer part."""
    boxed = extract_answer(response)
    if boxed is not None:
        return boxed
    return answer_part(response).strip()[-MAX_ANSWER_CHARS:]


def judge_reward(
    question: str,
    response: str,
    ground_truth: str,
    *,
    endpoints: Sequence[str],
    model: str | None = None,
    **client_kwargs: Any,
) -> RewardResult:
    """The judge's score in [0, 1]; ERROR (score 0, reason in metadata) when no verdict could be had."""
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError(
            f"science ground_truth must be a non-empty string (the reference answer), got {ground_truth!r}"
        )
    answer = answer_for_judge(response)
    if not answer:
        return RewardResult(0.0, RewardStatus.NO_ANSWER, {"extracted": None})
    client = shared_client(endpoints, model, **client_kwargs)
    try:
        score, endpoint = client.score(question, answer, ground_truth)
    except JudgeError as err:
        return RewardResult(0.0, RewardStatus.ERROR, {"extracted": answer, "detail": str(err)})
    status = RewardStatus.CORRECT if score >= 1.0 else RewardStatus.WRONG
    return RewardResult(score, status, {"extracted": answer, "judge": endpoint})
