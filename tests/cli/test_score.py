"""``falcon-h1r score``: a missing file, an empty file, a malformed row, a bad flag value; --help is plain text."""

from __future__ import annotations

from tests.cli.conftest import assert_usage_error

ROW = {"id": "r0", "data_source": "math", "response": "\\boxed{4}", "ground_truth": "4"}


def test_input_errors(cli, files, tmp_path):
    bad = files(ROW)
    out = tmp_path / "scored.jsonl"
    assert_usage_error(cli("score", bad["missing"], "--out", out), "score", "argument INPUT.jsonl", "no such file")
    assert_usage_error(cli("score", bad["empty"], "--out", out), "score", "argument INPUT.jsonl", "empty file")
    assert_usage_error(cli("score", bad["malformed"], "--out", out), "score", f"{bad['malformed']}:2:")
    assert not out.exists()  # validated before anything was scored


def test_bad_reward_kwargs(cli, files, tmp_path):
    good = files(ROW)["valid"]
    outcome = cli("score", good, "--out", tmp_path / "o.jsonl", "--reward-kwargs", "{oops")
    assert_usage_error(outcome, "score", "--reward-kwargs", "not valid JSON")


def test_help_shows_no_rest_markup(cli):
    outcome = cli("score", "--help")
    assert outcome.code == 0
    assert "``" not in outcome.out and ":class:" not in outcome.out
    assert "Input rows: data_source, the response (response or solution_str" in outcome.out
