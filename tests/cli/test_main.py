"""The one mechanism every subcommand shares (``verl_falcon_plugin.cli.main``)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from tests.cli.conftest import assert_usage_error
from verl_falcon_plugin import cli as cli_module
from verl_falcon_plugin.cli import CliError
from verl_falcon_plugin.data.jsonl_io import MalformedRowError


def test_console_script_prints_no_traceback(tmp_path):
    """The reported case, through the real entry point: a missing --rollouts file."""
    code = "import sys; from verl_falcon_plugin.cli import main; sys.exit(main())"
    argv = ["rl-data", "filter", "--rollouts", "missing.jsonl", "--out", "o", "--report", "r"]
    command = [sys.executable, "-c", code, *argv]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0] == (
        "falcon-h1r rl-data filter: error: argument --rollouts: missing.jsonl: no such file"
    )


@pytest.fixture
def fake_command(monkeypatch):
    """A subcommand whose behaviour each test chooses, registered like a discovered module."""
    behaviour = {}

    def add_parser(subparsers):
        parser = subparsers.add_parser("fake")
        parser.add_argument("--data")
        parser.set_defaults(func=lambda args: behaviour["run"](args))

    real = cli_module.build_parser

    def build_parser():
        parser = real()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        add_parser(sub)
        return parser

    monkeypatch.setattr(cli_module, "build_parser", build_parser)
    return behaviour


def test_a_missing_file_opened_later_names_its_flag(cli, fake_command, tmp_path):
    fake_command["run"] = lambda args: open(args.data).read()
    assert_usage_error(cli("fake", "--data", tmp_path / "nope.jsonl"), "fake", "--data", "No such file")


def test_cli_error_and_malformed_row_are_one_line(cli, fake_command):
    fake_command["run"] = raising(CliError("--data needs --other"))
    assert_usage_error(cli("fake"), "fake", "--data needs --other")
    fake_command["run"] = raising(MalformedRowError("x.jsonl", 7, "missing field 'id'"))
    assert_usage_error(cli("fake"), "fake", "x.jsonl:7: missing field 'id'")


def raising(error: Exception):
    def run(args):
        raise error

    return run


def test_a_bug_keeps_its_traceback(cli, fake_command):
    fake_command["run"] = raising(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        cli("fake")


def test_verbose_logs_the_whole_error(cli, fake_command, caplog):
    fake_command["run"] = raising(CliError("--data needs --other"))
    with caplog.at_level("DEBUG", logger="falcon_h1r.cli"):
        assert cli("-v", "fake").code == 2
    assert any(record.exc_info for record in caplog.records if record.name == "falcon_h1r.cli")


def test_missing_framework_is_one_line_with_the_install_command(cli, fake_command):
    from verl_falcon_plugin.requires import require

    fake_command["run"] = lambda args: require("no_such_framework_xyz", "falcon-h1r fake")
    outcome = cli("fake")
    assert outcome.code == 1 and "Traceback" not in outcome.err
    assert "falcon-h1r fake: error: falcon-h1r fake needs `no_such_framework_xyz`" in outcome.error_line()
