"""``falcon-h1r score INPUT.jsonl --out OUT.jsonl``: score a file of responses with the reward router.

Input rows: ``data_source``, the response (``response`` or ``solution_str``, or ``--response-key``),
``ground_truth`` (or verl's ``reward_model.ground_truth``), optional ``extra_info`` and ``id``.
Output rows: ``line`` (1-based input line), ``id`` when given, ``data_source`` and the router's fields.

Resumable: rows already in OUT (by ``id``, else by line) are skipped. Each output line is
written with one ``write`` on an append-only descriptor, and a trailing partial line left
by a crash (no newline, or not JSON) is cut off before resuming, so OUT only ever holds
whole lines, one per input row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Iterator

from verl_falcon_plugin.cli import CliError, input_file

RESPONSE_KEYS = ("response", "solution_str")


class InputError(CliError, ValueError):
    """A row of INPUT that cannot be scored, named by file:line (exit status 2)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score a JSONL file of responses with the Falcon-H1R rewards",
        description=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="INPUT.jsonl", type=input_file)
    parser.add_argument("--out", required=True, metavar="OUT.jsonl", help="appended to; rerun to resume")
    parser.add_argument(
        "--workers", type=int, default=32, help="concurrent rows (threads; math-verify has its own processes)"
    )
    parser.add_argument(
        "--response-key", default=None, help=f"field holding the response (default: {' or '.join(RESPONSE_KEYS)})"
    )
    parser.add_argument(
        "--reward-kwargs",
        default="{}",
        metavar="JSON",
        help='keyword arguments for compute_score, e.g. \'{"judge_endpoints": ["http://h:8000"]}\'',
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _row_key(row: dict[str, Any], line: int) -> str:
    return f"id:{row['id']}" if "id" in row else f"line:{line}"


def read_input(path: str, response_key: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, normalised row) for every non-empty line; InputError naming the line and field."""
    with open(path, encoding="utf-8") as f:
        for line_no, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}:{line_no}: not a JSON object ({err})") from err
            if not isinstance(row, dict):
                raise InputError(f"{path}:{line_no}: expected a JSON object, got {type(row).__name__}")
            yield line_no, _normalise_row(row, f"{path}:{line_no}", response_key)


def _normalise_row(row: dict[str, Any], where: str, response_key: str | None) -> dict[str, Any]:
    keys = (response_key,) if response_key else RESPONSE_KEYS
    response = next((row[k] for k in keys if k in row), None)
    if not isinstance(response, str):
        raise InputError(f"{where}: missing the response: add a string field {' or '.join(map(repr, keys))}")
    if "ground_truth" in row:
        ground_truth = row["ground_truth"]
    elif isinstance(row.get("reward_model"), dict) and "ground_truth" in row["reward_model"]:
        ground_truth = row["reward_model"]["ground_truth"]
    else:
        raise InputError(f"{where}: missing 'ground_truth' (or verl's 'reward_model': {{'ground_truth': ...}})")
    if not isinstance(row.get("data_source"), str):
        raise InputError(f"{where}: missing 'data_source' (a string such as 'aime25', 'livecodebench', 'gpqa')")
    extra_info = row.get("extra_info") or {}
    if not isinstance(extra_info, dict):
        raise InputError(f"{where}: 'extra_info' must be a JSON object, got {type(extra_info).__name__}")
    out = {
        "data_source": row["data_source"],
        "response": response,
        "ground_truth": ground_truth,
        "extra_info": extra_info,
    }
    if "id" in row:
        out["id"] = row["id"]
    return out


def repair_and_load_done(path: str) -> dict[str, dict[str, Any]]:
    """The rows already scored in ``path``, after cutting off a partial last line left by a crash."""
    if not os.path.exists(path):
        return {}
    with open(path, "rb") as f:
        data = f.read()
    good_end, done = 0, {}
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            break
        done[_row_key(row, row["line"])] = row
        good_end += len(raw)
    if good_end != len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
            os.fsync(f.fileno())
    return done


class LineWriter:
    """Appends whole lines, one ``os.write`` each, from any thread."""

    def __init__(self, path: str):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def write(self, row: dict[str, Any]) -> None:
        payload = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            written = os.write(self._fd, payload)
            if written != len(payload):  # a short write on a regular file means the disk is full
                raise OSError(f"short write ({written}/{len(payload)} bytes)")

    def close(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)


def _score_row(line: int, row: dict[str, Any], reward_kwargs: dict[str, Any]) -> dict[str, Any]:
    from verl_falcon_plugin.rewards.router import compute_score, error_result, resolve_domain

    head = {"line": line, **({"id": row["id"]} if "id" in row else {}), "data_source": row["data_source"]}
    try:
        result = compute_score(
            row["data_source"], row["response"], row["ground_truth"], row["extra_info"], **reward_kwargs
        )
    except Exception as err:  # one bad row becomes an error row; the file still completes
        result = error_result(resolve_domain(row["data_source"], row["extra_info"]), err)
    return {**head, **result}


def summary_table(rows: list[dict[str, Any]]) -> str:
    by_domain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_domain[row.get("domain", "?")].append(row)
    statuses = ("correct", "wrong", "no_answer", "timeout", "error")
    header = ("domain", "rows", "score", "acc", *statuses, "bad_format")
    lines = [header]
    for domain in sorted(by_domain) + ["all"]:
        group = rows if domain == "all" else by_domain[domain]
        if not group:
            continue
        n = len(group)
        lines.append(
            (
                domain,
                str(n),
                f"{sum(r['score'] for r in group) / n:.4f}",
                f"{sum(r['acc'] for r in group) / n:.4f}",
                *(str(sum(r["status"] == s for r in group)) for s in statuses),
                str(sum(not r["format_ok"] for r in group)),
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def run(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.rewards.router import resolve_domain

    try:
        reward_kwargs = json.loads(args.reward_kwargs)
    except json.JSONDecodeError as err:
        raise InputError(f"--reward-kwargs: not valid JSON ({err})") from err
    if not isinstance(reward_kwargs, dict):
        raise InputError("--reward-kwargs must be a JSON object")
    rows = list(read_input(args.input, args.response_key))
    seen: dict[str, int] = {}
    for line, row in rows:  # fail before scoring anything, not after an hour
        key = _row_key(row, line)
        if key in seen:
            raise InputError(f"{args.input}:{line}: duplicate id {row['id']!r} (first on line {seen[key]})")
        seen[key] = line
        try:
            resolve_domain(row["data_source"], row["extra_info"])
        except ValueError as err:
            raise InputError(f"{args.input}:{line}: {err}") from err
    done = repair_and_load_done(args.out)
    todo = [(line, row) for line, row in rows if _row_key(row, line) not in done]
    print(
        f"{len(rows)} rows, {len(rows) - len(todo)} already scored in {args.out}, {len(todo)} to score", file=sys.stderr
    )
    writer = LineWriter(args.out)
    scored: list[dict[str, Any]] = []
    try:
        from tqdm import tqdm

        with (
            tqdm(total=len(todo), disable=args.no_progress, unit="row", file=sys.stderr) as bar,
            ThreadPoolExecutor(max(1, args.workers)) as pool,
        ):
            pending = set()
            queue = iter(todo)
            for line, row in queue:  # bounded in flight, so a huge file is not all submitted at once
                pending.add(pool.submit(_score_row, line, row, reward_kwargs))
                if len(pending) >= 4 * args.workers:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        scored.append(future.result())
                        writer.write(scored[-1])
                        bar.update()
            for future in pending:
                scored.append(future.result())
                writer.write(scored[-1])
                bar.update()
    finally:
        writer.close()
    current = {_row_key(row, line) for line, row in rows}
    all_rows = [r for k, r in done.items() if k in current] + scored
    print(summary_table(all_rows))
    return 0
