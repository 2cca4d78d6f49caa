"""``falcon-h1r check``: the preflight."""

from __future__ import annotations

import argparse
import json
import os

from verl_falcon_plugin.cli import CliError
from verl_falcon_plugin.preflight import OPTIONS, Status, discover_checks, format_table, run_check, select_checks


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="prove the patches exact on a tiny model in this environment",
        description="Run the preflight checks; exits non-zero when any check FAILs.",
    )
    parser.add_argument(
        "only",
        nargs="*",
        metavar="CHECK_OR_AREA",
        help="run only these checks or areas (default: all)",
    )
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument(
        "--model",
        metavar="PATH",
        type=model_folder,
        help="a local model folder whose config.json the config checks inspect (nothing is downloaded)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    OPTIONS.model_path = args.model
    checks = discover_checks()
    if args.list:
        for check in checks.values():
            print(f"{check.area:12s} {check.name}")
        return 0
    outcomes = []
    try:
        selected = select_checks(checks, args.only)
    except ValueError as err:  # an unknown name: the user's to fix, not a crash
        raise CliError(f"CHECK_OR_AREA: {err}") from err
    for check in selected:
        outcome = run_check(check)
        print(f"[{outcome.result.status.value}] {check.name}: {outcome.result.detail}", flush=True)
        outcomes.append(outcome)
    print()
    print(format_table(outcomes))
    failed = [o.check.name for o in outcomes if o.result.status is Status.FAIL]
    counts = {s: sum(o.result.status is s for o in outcomes) for s in Status}
    print(f"\n{counts[Status.PASS]} passed, {counts[Status.FAIL]} failed, {counts[Status.SKIP]} skipped")
    return 1 if failed else 0


def model_folder(path: str) -> str:
    """argparse ``type=`` for ``--model``: a local folder with a readable, well-formed config.json."""
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path}: no such folder (a local model folder; nothing is downloaded)")
    config = os.path.join(path, "config.json")
    if not os.path.isfile(config):
        raise argparse.ArgumentTypeError(f"{path}: no config.json in this folder")
    with open(config, encoding="utf-8") as f:
        text = f.read()
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"{config}:{err.lineno}: not valid JSON ({err.msg})") from err
    if not isinstance(loaded, dict):
        raise argparse.ArgumentTypeError(f"{config}: expected a JSON object, got {type(loaded).__name__}")
    return path
