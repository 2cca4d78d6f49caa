"""Numbers for the report, read from what the stages logged (never recomputed from assumptions).

* verl's file logger (``trainer.logger=[console,file]``, ``VERL_FILE_LOGGER_PATH``) writes one JSON line per
  step: ``{"step": n, "data": {metric: value}}``;
* ``rl-data rollouts`` / the eval recipe write one JSON line per problem with its scored rollouts;
* ``rl-data filter`` and ``rl-data dedup`` write JSON reports; ``deepconf run`` writes ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

#: verl's per-step metrics used for the GRPO plots
GRPO_REWARD = "critic/score/mean"
GRPO_LENGTH = "response_length/mean"


class LogError(RuntimeError):
    """A log the report needs is missing or does not hold the expected numbers."""


def series(path: Path, metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of ``metric`` in a verl file-logger JSONL, in step order (last value per step)."""
    if not path.exists():
        raise LogError(f"{path} does not exist")
    by_step: dict[int, float] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise LogError(f"{path}:{number}: not JSON ({err.msg})") from err
        value = (row.get("data") or {}).get(metric)
        if isinstance(value, (int, float)):
            by_step[int(row["step"])] = float(value)
    return sorted(by_step.items())


def pass_at_1(path: Path) -> float:
    """The eval recipe's pass@1 (recipes/eval/pass_at_1.py), in %."""
    import importlib.util

    recipe = Path(__file__).resolve().parents[2] / "recipes" / "eval" / "pass_at_1.py"
    spec = importlib.util.spec_from_file_location("pass_at_1", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    score, _problems, _samples = module.pass_at_1(path)
    return round(score, 2)


def rollout_lengths(path: Path) -> list[int]:
    """Response lengths in characters of rollouts kept with ``--keep-text``."""
    return [len(r.get("text", "")) for line in path.read_text().splitlines() for r in json.loads(line)["rollouts"]]
