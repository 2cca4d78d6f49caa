"""The evaluation recipe's pass@1: the mean over problems of the fraction of solved samples."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

RECIPE = Path(__file__).parents[2] / "recipes" / "eval"


def load_pass_at_1():
    spec = importlib.util.spec_from_file_location("pass_at_1", RECIPE / "pass_at_1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.pass_at_1


def test_pass_at_1_averages_per_problem_then_over_problems(tmp_path: Path) -> None:
    rollouts = tmp_path / "aime25.jsonl"
    rows = [{"rollouts": [{"reward": r} for r in rewards]} for rewards in ([1, 0, 1, 1], [0, 0], [1.0, -0.5])]
    rollouts.write_text("".join(json.dumps(row) + "\n" for row in rows))
    score, problems, samples = load_pass_at_1()(rollouts)
    # (3/4 + 0/2 + 1/2) / 3, by hand: format penalties (negative rewards) never count as solved
    assert score == pytest.approx(100 * (0.75 + 0.0 + 0.5) / 3)
    assert (problems, samples) == (3, 8)


def test_every_benchmark_has_the_papers_sampling_budget() -> None:
    lines = (RECIPE / "benchmarks.tsv").read_text().splitlines()[1:]
    budget = {fields[0]: (int(fields[1]), int(fields[2])) for fields in (line.split("\t") for line in lines)}
    assert budget["aime25"] == (16, 65536)
    assert budget["gpqa_diamond"] == (5, 32768)
    assert budget["livecodebench_v6"] == (3, 65536)
    assert budget["math500"] == (1, 32768)
