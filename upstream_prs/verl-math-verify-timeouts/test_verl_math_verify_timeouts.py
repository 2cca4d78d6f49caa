"""verl 0.9.1's math_verify leaves timed-out tasks in its pool: later correct answers time out and score 0.

Each pathological answer holds a worker for math_verify's own alarm (5 s per ``verify`` call; forever if the
work is in C code the alarm cannot interrupt) while ``compute_score`` returns after ``timeout``. Three times
the pool size of them leave at least three rounds (15 s) of work queued in front of the correct answer,
whose 8 s bound then expires unpatched. Patched, every timeout kills the pool, so the correct answer runs
on a fresh one: 8 s covers spawning a worker and importing math_verify on a loaded machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from upstream_prs.conftest import package_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "score_after_timeouts.py"
POOL_SIZE = 4  # ProcessPoolExecutor(max_workers=4) in verl/utils/reward_score/math_verify.py
PATHOLOGICAL = r"\boxed{9^{9^{9^9}}}"
CORRECT = r"The answer is \boxed{2}."
GROUND_TRUTH = "2"
PATHOLOGICAL_TIMEOUT_S = 0.25
CORRECT_TIMEOUT_S = 8.0


@pytest.fixture(params=["unpatched", "patched"])
def verl_copy(request, tmp_path: Path) -> tuple[str, Path]:
    return request.param, package_copy(HERE, tmp_path, patched=request.param == "patched")


def score_after_timeouts(root: Path, mode: str, count: int, timeout: float, correct_timeout: float) -> tuple[dict, str]:
    args = [mode, PATHOLOGICAL, CORRECT, GROUND_TRUTH, str(count), str(timeout), str(correct_timeout)]
    logs = root / mode
    logs.mkdir()
    stdout, stderr = logs / "stdout.txt", logs / "stderr.txt"
    # Files, not pipes: the workers it leaves behind (unpatched) hold them open. A session of its own, so that
    # they are killed with it.
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), *args],
            stdout=out,
            stderr=err,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        try:
            proc.wait(timeout=120)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr.read_text()
    return json.loads(stdout.read_text()), stderr.read_text()


def test_a_correct_answer_scores_1_after_a_burst_of_timeouts_only_with_the_patch(verl_copy) -> None:
    variant, root = verl_copy
    result, stderr = score_after_timeouts(
        root, "sequence", 3 * POOL_SIZE, PATHOLOGICAL_TIMEOUT_S, correct_timeout=CORRECT_TIMEOUT_S
    )
    assert Path(result["module"]).is_relative_to(root)
    assert result["pathological"] == [0] * (3 * POOL_SIZE)
    assert result["correct"] == (1.0 if variant == "patched" else 0)
    timeouts_reported = stderr.count("math_verify timed out after")
    # Unpatched, the correct answer's timeout is as silent as the others; patched, each one is a WARNING.
    assert timeouts_reported == (3 * POOL_SIZE if variant == "patched" else 0), stderr


def test_a_correct_answer_survives_a_concurrent_timeout_killing_the_pool(verl_copy) -> None:
    """The patch kills the pool under the futures of concurrent calls: they retry on a fresh pool.

    Unpatched, the correct answer just waits behind the pathological ones (one round, ~5 s, within its 20 s).
    Without the retry, the patched correct answer would get BrokenProcessPool and score 0.
    """
    variant, root = verl_copy
    result, stderr = score_after_timeouts(root, "concurrent", POOL_SIZE, 1.0, correct_timeout=20.0)
    assert result["pathological"] == [0] * POOL_SIZE
    assert result["correct"] == 1.0, stderr
    assert "math_verify failed" not in stderr
