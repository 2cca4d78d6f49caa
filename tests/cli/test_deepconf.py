"""``falcon-h1r deepconf run``: problems and --config files missing, empty or malformed.

``--server`` points nowhere: every error must come before any engine or server is used.
"""

from __future__ import annotations

from tests.cli.conftest import assert_usage_error

PROBLEM = {"id": "p0", "prompt": "1+1?", "answer": "2"}


def run_args(tmp_path, problems, *extra):
    return ["deepconf", "run", problems, "--out", tmp_path / "out", "--server", "http://127.0.0.1:9",
            "--served-model", "m", *extra]  # fmt: skip


def test_problems_file(cli, files, tmp_path):
    bad = files(PROBLEM)
    run = lambda kind: cli(*run_args(tmp_path, bad[kind]))  # noqa: E731
    assert_usage_error(run("missing"), "deepconf run", "argument PROBLEMS.jsonl", "no such file")
    assert_usage_error(run("empty"), "deepconf run", "argument PROBLEMS.jsonl", "empty file")
    assert_usage_error(run("malformed"), "deepconf run", f"{bad['malformed']}:2:", "not valid JSON")
    no_prompt = tmp_path / "no-prompt.jsonl"
    no_prompt.write_text('{"answer": "2"}\n')
    assert_usage_error(cli(*run_args(tmp_path, no_prompt)), "deepconf run", f"{no_prompt}:1:", "'prompt'")
    assert not (tmp_path / "out").exists()


def test_config_file(cli, files, tmp_path):
    problems = files(PROBLEM)["valid"]
    bad_yaml = tmp_path / "c.yaml"
    bad_yaml.write_text("budget: 64\neta: [0.1\n")
    missing = tmp_path / "missing.yaml"
    assert_usage_error(
        cli(*run_args(tmp_path, problems, "--config", missing)), "deepconf run", "argument --config", "no such file"
    )
    assert_usage_error(
        cli(*run_args(tmp_path, problems, "--config", bad_yaml)), "deepconf run", f"--config {bad_yaml}:", "YAML"
    )
    bad_yaml.write_text("budjet: 64\n")
    assert_usage_error(cli(*run_args(tmp_path, problems, "--config", bad_yaml)), "deepconf run", "unknown keys")
    assert not (tmp_path / "out").exists()
