"""Run ``falcon-h1r`` in-process and check how it reports a user's mistake.

The contract (``verl_falcon_plugin/cli/__init__.py``): a usage or input error is ONE line on
stderr, ``falcon-h1r <command>: error: <cause>``, naming the flag or file:line; exit status 2;
nothing on stdout; no traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from verl_falcon_plugin.cli import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    def error_line(self) -> str:
        lines = [line for line in self.err.splitlines() if ": error: " in line]
        assert len(lines) == 1, f"expected one error line on stderr, got: {self.err!r}"
        return lines[0]


@pytest.fixture
def cli(capsys):
    def run(*argv: str) -> Outcome:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as stop:  # argparse's own usage errors
            code = stop.code
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def assert_usage_error(outcome: Outcome, command: str, *needles: str) -> None:
    """Exit 2, nothing on stdout, no traceback, one error line for ``command`` containing every needle."""
    assert outcome.code == 2, outcome
    assert outcome.out == "", outcome
    assert "Traceback" not in outcome.err, outcome.err
    line = outcome.error_line()
    assert line.startswith(f"falcon-h1r {command}: error: "), line
    for needle in needles:
        assert needle in line, (needle, line)


@pytest.fixture
def files(tmp_path: Path):
    """A valid one-row file, a missing path, an empty file and a file whose line 2 is malformed JSON."""

    def make(valid_row: dict, name: str = "rows.jsonl") -> dict[str, Path]:
        valid = tmp_path / f"valid-{name}"
        valid.write_text(json.dumps(valid_row) + "\n")
        empty = tmp_path / f"empty-{name}"
        empty.write_text("\n  \n")  # blank lines only: no rows
        malformed = tmp_path / f"bad-{name}"
        malformed.write_text(json.dumps(valid_row) + "\n" + '{"prompt": "unterminated\n')
        return {"valid": valid, "missing": tmp_path / f"missing-{name}", "empty": empty, "malformed": malformed}

    return make
