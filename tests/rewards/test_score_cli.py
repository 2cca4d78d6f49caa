"""`falcon-h1r score`: output, summary, bad input, resumability, and whole lines after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from verl_falcon_plugin.cli import main


def _write_rows(path, n, start=0):
    rows = [
        {"id": f"r{i}", "data_source": "aime25", "response": f"<think>w</think>\\boxed{{{i % 4}}}", "ground_truth": "1"}
        for i in range(start, start + n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_and_summarises(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_rows(src, 8)
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 0
    rows = _lines(out)
    assert sorted(r["id"] for r in rows) == [f"r{i}" for i in range(8)]
    assert sum(r["score"] for r in rows) == 2  # answers 0,1,2,3,0,1,2,3 against gold 1
    table = capsys.readouterr().out
    assert "math" in table and "0.2500" in table


def test_rerun_skips_scored_rows_and_repairs_a_partial_line(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    _write_rows(src, 6)
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 0
    first = out.read_text()
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 0
    assert out.read_text() == first  # nothing re-scored
    assert "6 already scored" in capsys.readouterr().err
    # simulate a crash in the middle of writing: the last row half on disk
    kept = first.splitlines(keepends=True)[:-1]
    out.write_text("".join(kept) + first.splitlines(keepends=True)[-1][:17])
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 0
    rows = _lines(out)
    assert sorted(r["id"] for r in rows) == [f"r{i}" for i in range(6)]


@pytest.mark.parametrize(
    "row,message",
    [
        ({"data_source": "aime25", "ground_truth": "1"}, "missing the response"),
        ({"data_source": "aime25", "response": "x"}, "missing 'ground_truth'"),
        ({"response": "x", "ground_truth": "1"}, "missing 'data_source'"),
        ({"data_source": "mystery", "response": "x", "ground_truth": "1"}, "extra_info\\['domain'\\]"),
        ({"id": "a", "data_source": "aime25", "response": "x", "ground_truth": "1"}, "duplicate id 'a'"),
    ],
)
def test_bad_rows_are_named(tmp_path, capsys, row, message):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    first = {"id": "a", "data_source": "aime25", "response": "x", "ground_truth": "1"}
    src.write_text(json.dumps(first) + "\n" + json.dumps(row) + "\n")
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:2" in err
    assert __import__("re").search(message, err)
    assert not out.exists()  # validated before anything was scored


_SLOW_SCORER = """
import sys, time
from verl_falcon_plugin.rewards import router
real = router.compute_score
def slow(*args, **kwargs):
    time.sleep(0.01)
    return real(*args, **kwargs)
router.compute_score = slow
from verl_falcon_plugin.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_sigkill_leaves_only_whole_lines_and_resume_completes(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    n = 400
    _write_rows(src, n)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SCORER, "score", str(src), "--out", str(out), "--no-progress", "--workers", "4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    text = out.read_text()
    complete = text.splitlines(keepends=True)
    whole = [line for line in complete if line.endswith("\n")]
    assert 0 < len(whole) < n, "kill came too late to test anything"
    for line in whole:
        json.loads(line)
    assert main(["score", str(src), "--out", str(out), "--no-progress"]) == 0
    ids = [r["id"] for r in _lines(out)]
    assert sorted(ids) == sorted(f"r{i}" for i in range(n))  # every row exactly once
