"""RL problem filtering by the SFT model's success rate over 8 rollouts (paper Sec. 3.1).

* 100% solved: dropped (nothing to learn);
* partially solved: kept;
* 0% solved and *every* rollout hit the token limit: dropped, except a seeded small
  fraction kept (the paper keeps "a small random subset"; the fraction is ours, 10%);
* 0% solved otherwise: majority-vote answer frequency ``f`` over the rollouts; a
  "consistent error" (``f >= 4`` of 8) is dropped, ``f < 4`` kept.

The result has the paper's mirrored-J difficulty distribution (many hard problems).

Input: JSONL, one problem per line, with ``rollouts``: a list of
``{"reward": float, "answer": str | null, "truncated": bool}`` (what ``rl-data rollouts``
writes). A rollout is a success when ``reward >= success_reward``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from verl_falcon_plugin.data.jsonl_io import MalformedRowError, require_field


class Decision:
    ALL_SOLVED = "dropped_all_solved"
    PARTIAL = "kept_partially_solved"
    ALL_TRUNCATED_DROPPED = "dropped_unsolved_all_truncated"
    ALL_TRUNCATED_KEPT = "kept_unsolved_all_truncated_sample"
    CONSISTENT_ERROR = "dropped_unsolved_consistent_error"
    INCONSISTENT = "kept_unsolved_inconsistent"


@dataclass(frozen=True)
class RLFilterConfig:
    rollouts_per_problem: int = 8
    success_reward: float = 1.0
    #: a 0%-solved problem whose majority answer appears at least this often is a consistent error
    consistent_error_min_frequency: int = 4
    #: fraction of all-truncated 0%-solved problems kept anyway
    keep_truncated_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.keep_truncated_fraction <= 1:
            raise ValueError(f"keep_truncated_fraction must be in [0, 1], got {self.keep_truncated_fraction}")
        if not 1 <= self.consistent_error_min_frequency <= self.rollouts_per_problem:
            raise ValueError("consistent_error_min_frequency must be in [1, rollouts_per_problem]")


@dataclass(frozen=True)
class Rollout:
    reward: float
    answer: str | None
    truncated: bool


@dataclass(frozen=True)
class Verdict:
    decision: str
    solved: int
    majority_answer: str | None = None
    majority_frequency: int = 0

    @property
    def kept(self) -> bool:
        return self.decision.startswith("kept")


def parse_rollouts(row: dict[str, Any], path: str, line: int, config: RLFilterConfig) -> list[Rollout]:
    raw = require_field(row, "rollouts", list, path, line)
    if len(raw) != config.rollouts_per_problem:
        raise MalformedRowError(
            path, line, f"{len(raw)} rollouts, expected {config.rollouts_per_problem} (set --rollouts-per-problem)"
        )
    rollouts = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise MalformedRowError(path, line, f"rollouts[{index}] must be an object")
        where = f"rollouts[{index}]"
        reward = _field(item, "reward", (int, float), path, line, where)
        truncated = _field(item, "truncated", bool, path, line, where)
        answer = item.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise MalformedRowError(path, line, f"{where}.answer must be a string or null")
        rollouts.append(Rollout(float(reward), answer, truncated))
    return rollouts


def _field(item: dict[str, Any], name: str, kind: Any, path: str, line: int, where: str) -> Any:
    try:
        return require_field(item, name, kind, path, line)
    except MalformedRowError as err:
        raise MalformedRowError(path, line, f"{where}: {err.problem}") from None


def majority_answer(rollouts: Iterable[Rollout]) -> tuple[str | None, int]:
    """The most frequent non-empty answer (whitespace-normalised) and its count."""
    counts = Counter(" ".join(r.answer.split()) for r in rollouts if r.answer and r.answer.strip())
    if not counts:
        return None, 0
    answer, frequency = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    return answer, frequency


def seeded_keep(key: str, fraction: float, seed: int) -> bool:
    """Keep with probability ``fraction``, decided by ``(seed, key)`` alone (order-independent)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def judge(rollouts: list[Rollout], key: str, config: RLFilterConfig) -> Verdict:
    solved = sum(r.reward >= config.success_reward for r in rollouts)
    if solved == len(rollouts):
        return Verdict(Decision.ALL_SOLVED, solved)
    if solved > 0:
        return Verdict(Decision.PARTIAL, solved)
    if all(r.truncated for r in rollouts):
        keep = seeded_keep(key, config.keep_truncated_fraction, config.seed)
        return Verdict(Decision.ALL_TRUNCATED_KEPT if keep else Decision.ALL_TRUNCATED_DROPPED, 0)
    answer, frequency = majority_answer(rollouts)
    decision = (
        Decision.CONSISTENT_ERROR if frequency >= config.consistent_error_min_frequency else Decision.INCONSISTENT
    )
    return Verdict(decision, 0, answer, frequency)


def problem_key(row: dict[str, Any], path: str, line: int) -> str:
    """A stable identity for seeding: the row's ``id``/``uid`` or, failing that, its prompt."""
    for field in ("id", "uid", "prompt"):
        if row.get(field) is not None:
            return f"{field}:{row[field]}"
    raise MalformedRowError(path, line, "needs an `id`, `uid` or `prompt` field to identify the problem")


def config_dict(config: RLFilterConfig) -> dict[str, Any]:
    return asdict(config)


def filter_rollouts(
    rollouts_path: str,
    out_path: str,
    report_path: str,
    plot_path: str | None,
    config: RLFilterConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """Judge every problem of ``rollouts_path``; write the kept problems, a JSON report and the plot."""
    from tqdm import tqdm

    from verl_falcon_plugin.data.jsonl_io import read_jsonl, write_json, write_jsonl
    from verl_falcon_plugin.data.rl_report import plot_difficulty, solve_histogram

    decisions: Counter = Counter()
    kept_rows: list[dict[str, Any]] = []
    kept_solved: list[int] = []
    all_solved: list[int] = []
    seen_keys: dict[str, int] = {}
    for line, row in tqdm(read_jsonl(rollouts_path), desc="filter", unit="problem", disable=not progress):
        key = problem_key(row, rollouts_path, line)
        if key in seen_keys:
            raise MalformedRowError(rollouts_path, line, f"problem {key} already appeared on line {seen_keys[key]}")
        seen_keys[key] = line
        verdict = judge(parse_rollouts(row, rollouts_path, line, config), key, config)
        decisions[verdict.decision] += 1
        all_solved.append(verdict.solved)
        if verdict.kept:
            kept = {k: v for k, v in row.items() if k != "rollouts"}
            kept["sft_solve_rate"] = verdict.solved / config.rollouts_per_problem
            kept["filter_decision"] = verdict.decision
            kept_rows.append(kept)
            kept_solved.append(verdict.solved)
    histogram = solve_histogram(kept_solved, config.rollouts_per_problem)
    report = {
        "input": str(rollouts_path),
        "config": config_dict(config),
        "problems": sum(decisions.values()),
        "kept": len(kept_rows),
        "dropped": sum(decisions.values()) - len(kept_rows),
        "decisions": dict(sorted(decisions.items())),
        "kept_by_solved_rollouts": histogram,
        "input_by_solved_rollouts": solve_histogram(all_solved, config.rollouts_per_problem),
    }
    write_jsonl(out_path, kept_rows)
    if plot_path:
        plot_difficulty(histogram, plot_path, f"RL set after filtering ({len(kept_rows)} problems)")
    write_json(report_path, report)
    return report
