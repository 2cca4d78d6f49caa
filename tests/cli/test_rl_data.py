"""``falcon-h1r rl-data dedup|filter|rollouts|export``: a missing file, an empty file, a malformed row."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_usage_error

PROBLEM = {"id": 0, "prompt": "What is 2+2?", "ground_truth": "4", "data_source": "math"}
ROLLOUTS = {"id": 0, "prompt": "p", "rollouts": [{"reward": 1.0, "answer": "4", "truncated": False}] * 8}
SFT = {"prompt": "What is 3+3?"}


def dedup_args(tmp_path, rl, sft):
    return ["rl-data", "dedup", "--rl", rl, "--sft", sft, "--out", tmp_path / "o.jsonl",
            "--report", tmp_path / "r.json", "--no-progress"]  # fmt: skip


def filter_args(tmp_path, rollouts):
    return ["rl-data", "filter", "--rollouts", rollouts, "--out", tmp_path / "o.jsonl",
            "--report", tmp_path / "r.json", "--no-progress"]  # fmt: skip


def rollouts_args(tmp_path, problems):  # the server is never contacted: the input fails first
    return ["rl-data", "rollouts", "--problems", problems, "--out", tmp_path / "o.jsonl",
            "--server-url", "http://127.0.0.1:9/v1", "--served-model", "m", "--no-progress"]  # fmt: skip


def export_args(tmp_path, problems):
    return ["rl-data", "export", "--problems", problems, "--out", tmp_path / "o.parquet"]


@pytest.mark.parametrize("flag", ["--rl", "--sft"])
def test_dedup(cli, files, tmp_path, flag):
    pytest.importorskip("datasketch")  # the data extra: the input checks run first, the command needs it all the same
    good_rl, good_sft = files(PROBLEM, "rl.jsonl")["valid"], files(SFT, "sft.jsonl")["valid"]
    bad = files(PROBLEM if flag == "--rl" else SFT, f"x{flag[2:]}.jsonl")
    for kind in ("missing", "empty", "malformed"):
        rl, sft = (bad[kind], good_sft) if flag == "--rl" else (good_rl, bad[kind])
        outcome = cli(*dedup_args(tmp_path, rl, sft))
        needles = [f"{bad['malformed']}:2:"] if kind == "malformed" else [f"argument {flag}", str(bad[kind])]
        assert_usage_error(outcome, "rl-data dedup", *needles)
    assert not (tmp_path / "o.jsonl").exists()


def test_filter(cli, files, tmp_path):
    bad = files(ROLLOUTS)
    run = lambda kind: cli(*filter_args(tmp_path, bad[kind]))  # noqa: E731
    assert_usage_error(run("missing"), "rl-data filter", "argument --rollouts", "no such file")
    assert_usage_error(run("empty"), "rl-data filter", "argument --rollouts", "empty file")
    assert_usage_error(run("malformed"), "rl-data filter", f"{bad['malformed']}:2:")
    assert not (tmp_path / "o.jsonl").exists()


def test_rollouts(cli, files, tmp_path):
    bad = files(PROBLEM)
    run = lambda kind: cli(*rollouts_args(tmp_path, bad[kind]))  # noqa: E731
    assert_usage_error(run("missing"), "rl-data rollouts", "argument --problems", "no such file")
    assert_usage_error(run("empty"), "rl-data rollouts", "argument --problems", "empty file")
    assert_usage_error(run("malformed"), "rl-data rollouts", f"{bad['malformed']}:2:")
    assert not (tmp_path / "o.jsonl").exists()


def test_export(cli, files, tmp_path):
    pytest.importorskip("pyarrow")
    bad = files(PROBLEM)
    run = lambda kind: cli(*export_args(tmp_path, bad[kind]))  # noqa: E731
    assert_usage_error(run("missing"), "rl-data export", "argument --problems", "no such file")
    assert_usage_error(run("empty"), "rl-data export", "argument --problems", "empty file")
    assert_usage_error(run("malformed"), "rl-data export", f"{bad['malformed']}:2:")
    assert not (tmp_path / "o.parquet").exists()
