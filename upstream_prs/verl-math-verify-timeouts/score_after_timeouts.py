"""Score pathological answers with a short timeout and a correct one; print the scores as JSON.

Run with ``PYTHONPATH`` at a copy of verl. ``verl/__init__`` (torch, Ray, plugins) and ``verl/utils/__init__``
(torch) take seconds to import, and every spawn worker of math_verify's pool would pay that again:
``verl`` and ``verl.utils`` are registered as bare packages over the copy, so only the module under test
and ``verl.utils.reward_score`` load. This runs at module level because spawn workers re-import this file
(as ``__mp_main__``) before they unpickle ``_verify_in_subprocess``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def register_bare_verl_packages() -> None:
    root = Path(importlib.util.find_spec("verl").submodule_search_locations[0])
    for name, path in (("verl", root), ("verl.utils", root / "utils")):
        package = types.ModuleType(name)
        package.__path__ = [str(path)]
        sys.modules[name] = package


register_bare_verl_packages()


def score_in_sequence(
    math_verify, pathological: str, correct: str, ground_truth: str, count: int, timeout: float, correct_timeout: float
) -> dict:
    """``count`` pathological answers one after the other, then a correct one."""
    scores = [math_verify.compute_score(pathological, ground_truth, timeout=timeout) for _ in range(count)]
    correct_score = math_verify.compute_score(correct, ground_truth, timeout=correct_timeout)
    return {"pathological": scores, "correct": correct_score}


def score_concurrently(
    math_verify, pathological: str, correct: str, ground_truth: str, count: int, timeout: float, correct_timeout: float
) -> dict:
    """``count`` pathological answers in threads, and a correct one queued behind them: the pool is killed
    under the correct answer's future."""
    with ThreadPoolExecutor(count) as threads:
        futures = [
            threads.submit(math_verify.compute_score, pathological, ground_truth, timeout=timeout) for _ in range(count)
        ]
        time.sleep(timeout / 4)
        correct_score = math_verify.compute_score(correct, ground_truth, timeout=correct_timeout)
        return {"pathological": [future.result() for future in futures], "correct": correct_score}


def main() -> None:
    from verl.utils.reward_score import math_verify

    mode, pathological, correct, ground_truth = sys.argv[1:5]
    count, timeout, correct_timeout = int(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
    score = {"sequence": score_in_sequence, "concurrent": score_concurrently}[mode]
    result = score(math_verify, pathological, correct, ground_truth, count, timeout, correct_timeout)
    print(json.dumps({**result, "module": math_verify.__file__}), flush=True)
    # Unpatched, the workers are still busy: exiting normally would join them. The caller kills the group.
    os._exit(0)


if __name__ == "__main__":
    main()
