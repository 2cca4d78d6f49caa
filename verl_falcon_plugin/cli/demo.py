"""``falcon-h1r demo``: the paper's pipeline at toy scale on CPU (see ``verl_falcon_plugin.demo``)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from verl_falcon_plugin.demo.__main__ import add_arguments

    parser = subparsers.add_parser(
        "demo", help="train, filter, reinforce and evaluate a tiny Falcon-H1 on CPU (resumable)",
        description="SFT -> RL data -> GRPO -> evaluation -> DeepConf -> out/demo/report.md, at toy scale.",
    )  # fmt: skip
    add_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.demo.__main__ import run_demo

    return run_demo(args)
