"""One reward function for every domain, in verl's custom-reward-function signature.

``compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``
picks the scheme from ``extra_info["domain"]`` or, failing that, from ``data_source``
(see :data:`DATA_SOURCE_PREFIXES`), then combines correctness with the format penalty::

    score = correctness
            - structure_penalty   if the response is not one <think>...</think> + non-empty answer
            - language_penalty    if more than max_foreign_share of its prose is in another script

with defaults ``structure_penalty=1.0``, ``language_penalty=0.5``, ``max_foreign_share=0.05``.
A correct but malformed answer therefore earns 0 and a malformed wrong one -1: in GRPO
only differences within a group matter, and a malformed answer always ranks below a
well-formed one with the same correctness. Every knob is a keyword argument, so it can
be set from ``reward.custom_reward_function.reward_kwargs``.

The returned dict always has the same keys (:data:`RESULT_KEYS`): verl's reward loop
builds its extra-info columns from the keys of the *first* sample of a batch.

For verl, point ``reward.custom_reward_function`` at :func:`compute_score_async`: verl's
reward managers await coroutine functions in their event loop, and the I/O-bound judge and
sandbox calls then run in this module's own thread pool (``FALCON_H1R_REWARD_THREADS``,
default 128) instead of the loop's small default executor; math-verify calls go to the
process pool of :mod:`~verl_falcon_plugin.rewards.math_verify_runner`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

from verl_falcon_plugin.rewards.format import DEFAULT_MAX_FOREIGN_SHARE, check_format
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus

DOMAINS = ("math", "code", "science")

#: lower-cased data_source prefixes (also matched after a "/") -> domain
DATA_SOURCE_PREFIXES: dict[str, str] = {
    "math": "math",
    "aime": "math",
    "amc": "math",
    "gsm8k": "math",
    "hmmt": "math",
    "amo": "math",
    "olympiad": "math",
    "omni": "math",
    "numina": "math",
    "deepscaler": "math",
    "dapo": "math",
    "openr1": "math",
    "polaris": "math",
    "big_math": "math",
    "skywork_math": "math",
    "code": "code",
    "livecodebench": "code",
    "lcb": "code",
    "taco": "code",
    "apps": "code",
    "codeforces": "code",
    "codecontests": "code",
    "code_contests": "code",
    "primeintellect": "code",
    "leetcode": "code",
    "deepcoder": "code",
    "kodcode": "code",
    "science": "science",
    "gpqa": "science",
    "supergpqa": "science",
    "scibench": "science",
    "mmlu": "science",
    "webinstruct": "science",
}

RESULT_KEYS = ("score", "acc", "status", "domain", "format_ok", "format_penalty", "foreign_share", "detail")

ENV_SANDBOX_ENDPOINTS = "FALCON_H1R_SANDBOX_ENDPOINTS"
ENV_JUDGE_ENDPOINTS = "FALCON_H1R_JUDGE_ENDPOINTS"


def resolve_domain(data_source: str, extra_info: Mapping[str, Any] | None = None) -> str:
    """The reward domain of a sample: ``extra_info["domain"]`` if set, else from ``data_source``."""
    explicit = (extra_info or {}).get("domain")
    if explicit:
        if explicit not in DOMAINS:
            raise ValueError(f"extra_info['domain']={explicit!r} is not one of {DOMAINS}")
        return explicit
    source = str(data_source).lower()
    candidates = [source] + [part for part in source.replace("\\", "/").split("/")[1:] if part]
    for candidate in candidates:
        for prefix, domain in DATA_SOURCE_PREFIXES.items():
            if candidate.startswith(prefix):
                return domain
    raise ValueError(
        f"cannot tell the reward domain of data_source={data_source!r}: set extra_info['domain'] to one of "
        f"{DOMAINS} in the dataset, or use a data_source starting with one of {sorted(DATA_SOURCE_PREFIXES)}"
    )


def _endpoints(value: str | Iterable[str] | None, env: str, what: str) -> list[str]:
    if value is None:
        value = os.environ.get(env, "")
    endpoints = [e.strip() for e in value.split(",")] if isinstance(value, str) else [str(e).strip() for e in value]
    endpoints = [e for e in endpoints if e]
    if not endpoints:
        raise ValueError(
            f"the {what} reward needs endpoints: pass {what}_endpoints=[...] in "
            f"reward.custom_reward_function.reward_kwargs or set {env}=http://host:port[,...]"
        )
    return endpoints


def _code_reward_fn() -> Callable[..., RewardResult]:
    from verl_falcon_plugin.rewards import code  # owned by the code-reward module; imported on first use

    return code.code_reward


def _prompt_text(extra_info: Mapping[str, Any]) -> str | None:
    for key in ("question", "prompt", "problem"):
        value = extra_info.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list) and value and isinstance(value[-1], Mapping):  # chat messages
            return str(value[-1].get("content", ""))
    return None


def correctness(
    domain: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any],
    *,
    math_timeout_s: float | None = None,
    sandbox_endpoints: str | Iterable[str] | None = None,
    code_kwargs: Mapping[str, Any] | None = None,
    judge_endpoints: str | Iterable[str] | None = None,
    judge_model: str | None = None,
    judge_kwargs: Mapping[str, Any] | None = None,
) -> RewardResult:
    """The domain's correctness reward, before any format penalty."""
    if domain == "math":
        from verl_falcon_plugin.rewards.math import math_reward

        return math_reward(solution_str, ground_truth, **({"timeout_s": math_timeout_s} if math_timeout_s else {}))
    if domain == "code":
        endpoints = _endpoints(sandbox_endpoints, ENV_SANDBOX_ENDPOINTS, "sandbox")
        return _code_reward_fn()(solution_str, ground_truth, endpoints=endpoints, **dict(code_kwargs or {}))
    if domain == "science":
        from verl_falcon_plugin.rewards.judge import judge_reward

        question = _prompt_text(extra_info)
        if question is None:
            raise ValueError("the science judge needs the question: put it in extra_info['question'] (or 'prompt')")
        endpoints = _endpoints(judge_endpoints, ENV_JUDGE_ENDPOINTS, "judge")
        return judge_reward(
            question, solution_str, ground_truth, endpoints=endpoints, model=judge_model, **dict(judge_kwargs or {})
        )
    raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    *,
    format_check: bool = True,
    structure_penalty: float = 1.0,
    language_penalty: float = 0.5,
    max_foreign_share: float = DEFAULT_MAX_FOREIGN_SHARE,
    think_opened_by_prompt: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """verl's custom reward function: correctness of the domain minus the format penalty."""
    extra_info = dict(extra_info or {})
    domain = resolve_domain(data_source, extra_info)
    known = {"math_timeout_s", "sandbox_endpoints", "code_kwargs", "judge_endpoints", "judge_model", "judge_kwargs"}
    # verl passes reward_router_address / reward_model_tokenizer to every reward function.
    result = correctness(
        domain, solution_str, ground_truth, extra_info, **{k: v for k, v in kwargs.items() if k in known}
    )
    if format_check:
        fmt = check_format(solution_str, _prompt_text(extra_info), think_opened_by_prompt=think_opened_by_prompt)
        penalty = fmt.penalty(structure_penalty, language_penalty, max_foreign_share)
        format_ok, share, reasons = fmt.structure_ok, fmt.foreign_share, list(fmt.reasons)
    else:
        penalty, format_ok, share, reasons = 0.0, True, 0.0, []
    detail = dict(result.metadata)
    if reasons:
        detail["format"] = reasons
    return {
        "score": float(result.score) - penalty,
        "acc": float(result.score),
        "status": result.status.value,
        "domain": domain,
        "format_ok": bool(format_ok),
        "format_penalty": float(penalty),
        "foreign_share": round(float(share), 4),
        "detail": json.dumps(detail, default=str, ensure_ascii=False),
    }


def error_result(domain: str, err: BaseException) -> dict[str, Any]:
    """The row of a sample whose scoring raised (used by batch scoring, which must not lose the batch)."""
    return {
        "score": 0.0,
        "acc": 0.0,
        "status": RewardStatus.ERROR.value,
        "domain": domain,
        "format_ok": False,
        "format_penalty": 0.0,
        "foreign_share": 0.0,
        "detail": json.dumps({"error": f"{type(err).__name__}: {err}"}),
    }


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def shared_executor() -> ThreadPoolExecutor:
    """The thread pool for I/O-bound scoring (judge, sandbox, waiting on math-verify workers)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            threads = int(os.environ.get("FALCON_H1R_REWARD_THREADS", "128"))
            _executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="falcon-h1r-reward")
        return _executor


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`compute_score` on the shared thread pool, awaitable from verl's reward loop."""
    loop = asyncio.get_running_loop()
    call = functools.partial(compute_score, data_source, solution_str, ground_truth, extra_info, **kwargs)
    return await loop.run_in_executor(shared_executor(), call)


def compute_score_batch(
    data_sources: list[str],
    solution_strs: list[str],
    ground_truths: list[Any],
    extra_infos: list[Mapping[str, Any] | None] | None = None,
    *,
    raise_on_error: bool = False,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Score a batch concurrently on the shared thread pool; results in input order.

    A sample whose scoring raises becomes an ``error`` row unless ``raise_on_error``.
    """
    n = len(solution_strs)
    if not (len(data_sources) == len(ground_truths) == n) or (extra_infos is not None and len(extra_infos) != n):
        raise ValueError(
            f"batch lists differ in length: data_sources={len(data_sources)}, solution_strs={n}, "
            f"ground_truths={len(ground_truths)}, extra_infos={None if extra_infos is None else len(extra_infos)}"
        )
    infos = extra_infos or [None] * n
    futures = [
        shared_executor().submit(compute_score, ds, sol, gt, info, **kwargs)
        for ds, sol, gt, info in zip(data_sources, solution_strs, ground_truths, infos)
    ]
    results = []
    for future, ds, info in zip(futures, data_sources, infos):
        try:
            results.append(future.result())
        except Exception as err:
            if raise_on_error:
                raise
            try:
                domain = resolve_domain(ds, info)
            except ValueError:
                domain = "unknown"
            results.append(error_result(domain, err))
    return results
