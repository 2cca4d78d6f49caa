"""Binary code reward: run the response's program on sampled tests through Sandbox-Fusion.

Score 1 only when every sampled test passes. Programs go through the official
``sandbox_fusion`` client (``run_code``/``RunCodeRequest``) to endpoints picked round-robin
from a process-wide :class:`EndpointPool`, which fails over when an endpoint is down.

Statuses: CORRECT (all passed); WRONG (a definite failure: wrong answer, compile error,
runtime error, time limit); NO_ANSWER (no fenced code, or a language that cannot be told);
ERROR (no verdict: every endpoint down, or the sandbox failed); never a silent 0.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Sequence
from typing import Any

import requests
import sandbox_fusion

from verl_falcon_plugin.rewards.code.endpoints import AllEndpointsDown, EndpointDown, EndpointPool, shared_pool
from verl_falcon_plugin.rewards.code.extract import SANDBOX_LANGUAGE, extract_code
from verl_falcon_plugin.rewards.code.tests import (
    TestCase,
    call_harness,
    call_result_matches,
    parse_tests,
    sample_tests,
    stdout_matches,
)
from verl_falcon_plugin.rewards.result import RewardResult, RewardStatus

#: per-test statuses that decide the verdict (a wrong program), as opposed to "no verdict" ones
DEFINITE_FAILURES = frozenset(
    {"wrong_answer", "compile_error", "compile_timeout", "runtime_error", "timeout", "call_test_needs_python"}
)
_STDERR_KEPT = 400


def code_reward(
    response: str,
    tests: Any,
    *,
    endpoints: Sequence[str] | EndpointPool,
    max_tests: int | None = 16,
    seed: int = 0,
    run_timeout: float = 10.0,
    compile_timeout: float = 10.0,
    language: str | None = None,
    concurrency: int = 4,
    stop_on_failure: bool = True,
    max_attempts: int = 1,
    client_timeout: float | None = 600.0,
) -> RewardResult:
    """Score ``response`` against ``tests`` (see :mod:`.tests` for the formats).

    ``max_tests``: run at most this many tests per item (seeded sample; None = all).
    ``language``: force a canonical language (else the fence tag, else detection).
    ``concurrency``: tests of this item in flight at once. ``stop_on_failure``: stop starting
    tests after the first definite failure (the score is binary). ``max_attempts``: the client's
    own retries (exponential backoff) on one endpoint before failing over to the next.
    ``client_timeout``: seconds one HTTP request may take, queueing in a busy sandbox included;
    past it the endpoint counts as down (None: wait forever).
    """
    for name, value in (("run_timeout", run_timeout), ("compile_timeout", compile_timeout)):
        if not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    if language is not None and language not in SANDBOX_LANGUAGE:
        raise ValueError(f"language must be one of {sorted(SANDBOX_LANGUAGE)} or None (detect), got {language!r}")
    pool = shared_pool(endpoints)
    all_cases = parse_tests(tests)
    cases = sample_tests(all_cases, max_tests, seed)
    if not cases:
        raise ValueError("tests: the item has no test cases; a program cannot be judged without one")
    block = extract_code(response)
    if block is None:
        return RewardResult(0.0, RewardStatus.NO_ANSWER, {"reason": "no fenced code block in the answer"})
    canonical = language or block.language
    if canonical is None or canonical not in SANDBOX_LANGUAGE:
        return RewardResult(
            0.0, RewardStatus.NO_ANSWER, {"reason": f"the code's language cannot be told (got {canonical!r})"}
        )
    metadata: dict[str, Any] = {
        "language": canonical,
        "sandbox_language": SANDBOX_LANGUAGE[canonical],
        "language_source": "argument" if language else block.language_source,
        "tests_total": len(all_cases),
        "tests_sampled": len(cases),
    }
    outcomes = _run_cases(
        block.code,
        canonical,
        cases,
        pool,
        run_timeout,
        compile_timeout,
        concurrency,
        stop_on_failure,
        max_attempts,
        client_timeout,
    )
    metadata["tests"] = outcomes
    statuses = [o["status"] for o in outcomes]
    if all(s == "passed" for s in statuses):
        return RewardResult(1.0, RewardStatus.CORRECT, metadata)
    if any(s in DEFINITE_FAILURES for s in statuses):
        return RewardResult(0.0, RewardStatus.WRONG, metadata)
    errors = [o.get("error", o["status"]) for o in outcomes if o["status"] not in ("passed", "skipped")]
    metadata["error"] = errors[0] if errors else "no test produced a verdict"
    return RewardResult(0.0, RewardStatus.ERROR, metadata)


def _run_cases(
    code,
    language,
    cases,
    pool,
    run_timeout,
    compile_timeout,
    concurrency,
    stop_on_failure,
    max_attempts,
    client_timeout,
) -> list[dict[str, Any]]:
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    stop = threading.Event()  # set by the worker that sees a definite failure, checked before each start

    def run(case: TestCase) -> dict[str, Any]:
        if stop.is_set():
            return {"index": case.index, "status": "skipped"}
        outcome = _run_case(code, language, case, pool, run_timeout, compile_timeout, max_attempts, client_timeout)
        if stop_on_failure and outcome["status"] in DEFINITE_FAILURES:
            stop.set()
        return outcome

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(concurrency, len(cases))) as executor:
        return list(executor.map(run, cases))


def _program(code: str, language: str, case: TestCase) -> str | None:
    if case.is_call:
        return call_harness(code, case.fn_name) if language == "python" else None
    return f"{code}\n\n{case.appendix}" if case.appendix else code


def _run_case(
    code, language, case: TestCase, pool: EndpointPool, run_timeout, compile_timeout, max_attempts, client_timeout
) -> dict[str, Any]:
    program = _program(code, language, case)
    if program is None:
        return {
            "index": case.index,
            "status": "call_test_needs_python",
            "error": f"function-call tests (fn_name={case.fn_name!r}) run Python only; the response is {language}",
        }
    request = sandbox_fusion.RunCodeRequest(
        code=program,
        language=SANDBOX_LANGUAGE[language],
        stdin=case.stdin,
        run_timeout=run_timeout,
        compile_timeout=compile_timeout,
    )

    def send(endpoint: str) -> sandbox_fusion.RunCodeResponse:
        try:
            return sandbox_fusion.run_code(
                request, endpoint=endpoint, max_attempts=max_attempts, client_timeout=client_timeout
            )
        except (requests.ConnectionError, requests.Timeout) as err:
            raise EndpointDown(f"{type(err).__name__}: {err}") from err
        except Exception as err:  # the client raises bare Exception for HTTP errors and SandboxError
            if str(err).startswith("Faas api responded with code 5"):
                raise EndpointDown(str(err)[:300]) from err
            raise

    try:
        endpoint, response = pool.call(send)
    except AllEndpointsDown as err:
        return {"index": case.index, "status": "endpoint_down", "error": str(err)[:600]}
    except Exception as err:  # noqa: BLE001 - a sandbox-side failure is this test's "no verdict"
        return {"index": case.index, "status": "sandbox_error", "error": str(err)[:600]}
    return {"index": case.index, "endpoint": endpoint, **_judge(case, response)}


def _judge(case: TestCase, response: sandbox_fusion.RunCodeResponse) -> dict[str, Any]:
    compiled, ran = response.compile_result, response.run_result
    if compiled is not None and (compiled.status != "Finished" or compiled.return_code != 0):
        status = "compile_timeout" if compiled.status == "TimeLimitExceeded" else "compile_error"
        return {"status": status, "stderr": (compiled.stderr or "")[-_STDERR_KEPT:]}
    if ran is None:
        return {"status": "sandbox_error", "error": f"no run result (status {response.status}): {response.message}"}
    details = {"execution_time": ran.execution_time, "stderr": (ran.stderr or "")[-_STDERR_KEPT:]}
    if ran.status == "TimeLimitExceeded":
        return {"status": "timeout", **details}
    if ran.status != "Finished":
        return {"status": "sandbox_error", "error": f"run status {ran.status}", **details}
    if ran.return_code != 0:
        return {"status": "runtime_error", "return_code": ran.return_code, **details}
    stdout = ran.stdout or ""
    if case.appendix:
        passed = True  # assert tests: exiting 0 is passing
    elif case.is_call:
        passed = call_result_matches(stdout, case.expected)
    else:
        passed = stdout_matches(stdout, case.expected)
    return {"status": "passed" if passed else "wrong_answer", **details}
