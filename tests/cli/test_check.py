"""``falcon-h1r check --model PATH``: a missing folder, a folder without config.json, a malformed config.json."""

from __future__ import annotations

from tests.cli.conftest import assert_usage_error


def test_model_folder(cli, tmp_path):
    missing = tmp_path / "missing"
    assert_usage_error(cli("check", "--model", missing), "check", "argument --model", "no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_usage_error(cli("check", "--model", empty), "check", "argument --model", "no config.json")
    (empty / "config.json").write_text('{\n  "model_type": "falcon_h1",\n  "hidden_size": \n}\n')
    assert_usage_error(cli("check", "--model", empty), "check", f"{empty / 'config.json'}:4:", "not valid JSON")


def test_unknown_check(cli):
    assert_usage_error(cli("check", "no.such.check"), "check", "CHECK_OR_AREA", "unknown check or area")
