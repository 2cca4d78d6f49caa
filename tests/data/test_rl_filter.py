"""The RL difficulty filter (paper Sec. 3.1) on hand-built rollout sets covering every branch."""

from __future__ import annotations

import json

import pytest

from verl_falcon_plugin.cli import main
from verl_falcon_plugin.data.jsonl_io import MalformedRowError
from verl_falcon_plugin.data.rl_filter import Decision, RLFilterConfig, Rollout, judge, majority_answer

CONFIG = RLFilterConfig()


def rollouts(rewards, answers=None, truncated=None):
    answers = answers or ["x"] * len(rewards)
    truncated = truncated or [False] * len(rewards)
    return [Rollout(float(r), a, t) for r, a, t in zip(rewards, answers, truncated)]


def problem(pid, rewards, answers=None, truncated=None):
    rs = rollouts(rewards, answers, truncated)
    return {
        "id": pid,
        "prompt": f"p{pid}",
        "rollouts": [{"reward": r.reward, "answer": r.answer, "truncated": r.truncated} for r in rs],
    }


DISTINCT = [str(i) for i in range(8)]


@pytest.mark.parametrize(
    "rs,expected",
    [
        (rollouts([1] * 8), Decision.ALL_SOLVED),
        (rollouts([1] * 7 + [0]), Decision.PARTIAL),
        (rollouts([1] + [0] * 7), Decision.PARTIAL),
        # 0% solved, not all truncated: majority frequency decides, boundary at 4 of 8
        (rollouts([0] * 8, ["7"] * 4 + DISTINCT[:4]), Decision.CONSISTENT_ERROR),
        (rollouts([0] * 8, ["7"] * 3 + DISTINCT[:5]), Decision.INCONSISTENT),
        (rollouts([0] * 8, ["7"] * 8), Decision.CONSISTENT_ERROR),
        (rollouts([0] * 8, [None] * 8), Decision.INCONSISTENT),
        # truncated rollouts without an answer do not vote
        (rollouts([0] * 8, ["7"] * 4 + [None] * 4, [False] * 4 + [True] * 4), Decision.CONSISTENT_ERROR),
        # a partially solved problem stays even if every rollout was truncated
        (rollouts([1] + [0] * 7, truncated=[True] * 8), Decision.PARTIAL),
    ],
)
def test_every_branch(rs, expected):
    assert judge(rs, "k", CONFIG).decision == expected


def test_all_truncated_unsolved_are_mostly_dropped_with_a_seeded_sample_kept():
    rs = rollouts([0] * 8, ["7"] * 8, [True] * 8)  # would be a consistent error if not truncated
    decisions = [
        judge(rs, f"id:{i}", RLFilterConfig(keep_truncated_fraction=0.1, seed=3)).decision for i in range(2000)
    ]
    kept = decisions.count(Decision.ALL_TRUNCATED_KEPT)
    assert decisions.count(Decision.ALL_TRUNCATED_DROPPED) + kept == 2000
    assert 200 - 4 * 13.4 < kept < 200 + 4 * 13.4  # binomial(2000, 0.1): 4 standard deviations
    again = [judge(rs, f"id:{i}", RLFilterConfig(keep_truncated_fraction=0.1, seed=3)).decision for i in range(2000)]
    assert again == decisions
    assert judge(rs, "id:0", RLFilterConfig(keep_truncated_fraction=0.0)).decision == Decision.ALL_TRUNCATED_DROPPED
    assert judge(rs, "id:0", RLFilterConfig(keep_truncated_fraction=1.0)).decision == Decision.ALL_TRUNCATED_KEPT


def test_majority_normalises_whitespace():
    assert majority_answer(rollouts([0] * 3, ["1 / 2", "1/2", " 1 /  2"])) == ("1 / 2", 2)


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_command_writes_kept_set_report_and_plot(tmp_path, capsys):
    rows = (
        [problem(i, [1] * 8) for i in range(3)]
        + [problem(10 + i, [1] * i + [0] * (8 - i)) for i in range(1, 8)]
        + [problem(20, [0] * 8, ["5"] * 5 + DISTINCT[:3])]
        + [problem(21, [0] * 8, DISTINCT)]
        + [problem(30 + i, [0] * 8, truncated=[True] * 8) for i in range(4)]
    )
    write(tmp_path / "r.jsonl", rows)
    out, report, plot = tmp_path / "kept.jsonl", tmp_path / "report.json", tmp_path / "hist.png"
    code = main(["rl-data", "filter", "--rollouts", str(tmp_path / "r.jsonl"), "--out", str(out),
                 "--report", str(report), "--plot", str(plot), "--keep-truncated-fraction", "0", "--no-progress"])  # fmt: skip
    assert code == 0
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(k["id"] for k in kept) == list(range(11, 18)) + [21]
    assert all("rollouts" not in k for k in kept)
    summary = json.loads(report.read_text())
    assert summary["decisions"] == {
        Decision.ALL_SOLVED: 3, Decision.PARTIAL: 7, Decision.CONSISTENT_ERROR: 1,
        Decision.INCONSISTENT: 1, Decision.ALL_TRUNCATED_DROPPED: 4,
    }  # fmt: skip
    assert summary["kept_by_solved_rollouts"] == [1, 1, 1, 1, 1, 1, 1, 1, 0]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "kept 8, dropped 8" in capsys.readouterr().out


def test_malformed_rows_name_file_and_line_and_leave_no_output(tmp_path, capsys):
    bad = problem(1, [1] * 8)
    bad["rollouts"][3] = {"reward": "1", "truncated": False}
    write(tmp_path / "r.jsonl", [problem(0, [1] * 8), bad])
    out = tmp_path / "kept.jsonl"
    args = ["rl-data", "filter", "--rollouts", str(tmp_path / "r.jsonl"), "--out", str(out),
            "--report", str(tmp_path / "rep.json"), "--no-progress"]  # fmt: skip
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "r.jsonl:2: rollouts[3]: field 'reward'" in captured.err and not captured.out
    assert not out.exists() and not list(tmp_path.glob(".kept.jsonl*"))
    write(tmp_path / "r.jsonl", [problem(0, [1] * 7)])
    with pytest.raises(MalformedRowError, match="r.jsonl:1: 7 rollouts, expected 8"):
        from verl_falcon_plugin.data.rl_filter import filter_rollouts

        filter_rollouts(str(tmp_path / "r.jsonl"), str(out), str(tmp_path / "rep.json"), None, CONFIG, progress=False)
