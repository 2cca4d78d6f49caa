"""``falcon-h1r rl-data dedup|filter|rollouts``: preparing the RL problem set (paper Sec. 3.1)."""

from __future__ import annotations

import argparse
import json
import logging

from verl_falcon_plugin.cli import CliError, input_file

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rl-data",
        help="RL data: dedup against SFT, rollouts with the SFT model, difficulty filter",
        description="Prepare the RL problem set: dedup -> rollouts -> filter -> export (verl's RL parquet).",
    )
    commands = parser.add_subparsers(dest="rl_data_command", required=True, metavar="STEP")
    _add_dedup(commands)
    _add_filter(commands)
    _add_rollouts(commands)
    _add_export(commands)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_dedup(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dedup", help="drop RL problems overlapping the SFT data (exact + MinHash)")
    parser.add_argument("--rl", required=True, type=input_file, help="RL problems, JSONL")
    parser.add_argument(
        "--sft", required=True, nargs="+", type=input_file, help="SFT files (JSONL/Parquet with messages or prompt)"
    )
    parser.add_argument("--out", required=True, help="kept RL problems, JSONL")
    parser.add_argument("--report", required=True, help="JSON report of what was dropped and why")
    parser.add_argument("--threshold", type=float, default=0.8, help="MinHash Jaccard threshold (default 0.8)")
    parser.add_argument("--ngram", type=int, default=3, help="word n-gram size of the shingles (default 3)")
    parser.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    parser.add_argument("--field", default="prompt", help="RL field holding the problem (default prompt)")
    _common(parser)
    parser.set_defaults(func=run_dedup)


def _add_filter(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("filter", help="keep problems by the SFT model's success over 8 rollouts")
    parser.add_argument("--rollouts", required=True, type=input_file, help="JSONL from `rl-data rollouts`")
    parser.add_argument("--out", required=True, help="kept problems, JSONL")
    parser.add_argument("--report", required=True, help="JSON report")
    parser.add_argument("--plot", help="PNG histogram of the kept difficulty distribution")
    parser.add_argument("--rollouts-per-problem", type=int, default=8)
    parser.add_argument("--success-reward", type=float, default=1.0, help="reward counted as solved (default 1.0)")
    parser.add_argument(
        "--consistent-error-min-frequency",
        type=int,
        default=4,
        help="majority-answer count that marks a consistent error (default 4)",
    )
    parser.add_argument(
        "--keep-truncated-fraction",
        type=float,
        default=0.1,
        help="fraction of all-truncated unsolved problems kept (default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0)
    _common(parser)
    parser.set_defaults(func=run_filter)


def _add_rollouts(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("rollouts", help="sample rollouts with vLLM and score them with the project's rewards")
    parser.add_argument(
        "--problems", required=True, type=input_file, help="JSONL with prompt, ground_truth, data_source"
    )
    parser.add_argument(
        "--out", required=True, help="rollouts JSONL (input of `rl-data filter`); appended to, rerun to resume"
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model", help="model path for an offline vLLM engine")
    where.add_argument("--server-url", help="OpenAI-compatible server, e.g. http://host:8000/v1")
    parser.add_argument("--served-model", help="model name on the server (with --server-url)")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-tokens", type=int, default=32_768)
    parser.add_argument("--seed", type=int, default=0, help="engine seed (offline engine)")
    parser.add_argument("--request-seed", type=int, default=None, help="per-request sampling seed (default: none)")
    parser.add_argument("--batch-size", type=int, default=64, help="problems per generation call")
    parser.add_argument("--system-prompt", choices=["paper", "none"], default="paper")
    parser.add_argument("--keep-text", action="store_true", help="store the generated texts too")
    parser.add_argument(
        "--domain", choices=["math", "code", "science"],
        help="reward domain for rows without extra_info.domain (a data_source the router does not know)",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=16, help="parallel requests to the server")
    parser.add_argument("--max-attempts", type=int, default=6, help="tries per request on 429/5xx/connection errors")
    parser.add_argument("--retry-backoff", type=float, default=2.0, help="first retry delay in s, doubled each time")
    parser.add_argument("--request-timeout", type=float, default=3600.0, help="seconds per server request")
    engine_arg_help = "extra vllm.LLM argument, e.g. dtype='\"bfloat16\"' or tensor_parallel_size=8"
    parser.add_argument("--engine-arg", action="append", default=[], metavar="KEY=JSON", help=engine_arg_help)
    _common(parser)
    parser.set_defaults(func=run_rollouts)


def run_dedup(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.data.rl_dedup import DedupConfig, dedup

    config = DedupConfig(threshold=args.threshold, ngram=args.ngram, num_perm=args.num_perm, rl_field=args.field)
    report = dedup(args.rl, args.sft, args.out, args.report, config, progress=not args.no_progress)
    print(
        f"dedup: {report['problems']} problems, kept {report['kept']}, dropped {report['dropped']} "
        f"{report['dropped_by_reason']} (SFT rows indexed: {report['sft_rows_indexed']}) -> {args.out}; "
        f"report {args.report}"
    )
    return 0


def run_filter(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.data.rl_filter import RLFilterConfig, filter_rollouts

    config = RLFilterConfig(
        rollouts_per_problem=args.rollouts_per_problem,
        success_reward=args.success_reward,
        consistent_error_min_frequency=args.consistent_error_min_frequency,
        keep_truncated_fraction=args.keep_truncated_fraction,
        seed=args.seed,
    )
    report = filter_rollouts(args.rollouts, args.out, args.report, args.plot, config, progress=not args.no_progress)
    print(f"filter: {report['problems']} problems, kept {report['kept']}, dropped {report['dropped']}")
    for decision, count in report["decisions"].items():
        print(f"  {decision:40s} {count}")
    print(f"  kept by solved rollouts (0..{args.rollouts_per_problem}): {report['kept_by_solved_rollouts']}")
    print(f"-> {args.out}; report {args.report}" + (f"; plot {args.plot}" if args.plot else ""))
    return 0


def _engine_args(pairs: list[str]) -> dict:
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--engine-arg {pair!r}: expected KEY=JSON")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


def run_rollouts(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.data import rl_rollouts
    from verl_falcon_plugin.data.jsonl_append import ResumeMismatchError

    sampling = rl_rollouts.SamplingConfig(args.n, args.temperature, args.top_p, args.max_tokens, args.request_seed)
    if args.server_url:
        if not args.served_model:
            raise CliError("--server-url needs --served-model (the model name the server serves)")
        retry = rl_rollouts.RetryPolicy(max_attempts=args.max_attempts, backoff_s=args.retry_backoff)
        generator = rl_rollouts.OpenAIServer(
            args.server_url, args.served_model, timeout_s=args.request_timeout, concurrency=args.concurrency,
            retry=retry,
        )  # fmt: skip
    else:
        generator = rl_rollouts.OfflineVLLM(args.model, seed=args.seed, **_engine_args(args.engine_arg))
    try:
        summary = rl_rollouts.run_rollouts(
            args.problems, args.out, generator, sampling,
            system_prompt=rl_rollouts.PAPER_SYSTEM_PROMPT if args.system_prompt == "paper" else None,
            batch_size=args.batch_size, keep_text=args.keep_text, progress=not args.no_progress, domain=args.domain,
        )  # fmt: skip
    except ResumeMismatchError as err:
        raise CliError(str(err)) from err
    rate = summary["correct"] / max(1, summary["rollouts"])
    print(
        f"rollouts: {summary['problems']} problems x {sampling.n} = {summary['rollouts']} rollouts "
        f"({summary['resumed']} problems resumed from the output), "
        f"{summary['correct']} correct ({rate:.1%}), {summary['truncated']} hit max_tokens -> {args.out}"
    )
    return 0


def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="filtered problems (JSONL) -> verl's RL parquet (data.train_files)")
    parser.add_argument("--problems", required=True, type=input_file, help="JSONL from `rl-data filter`")
    parser.add_argument("--out", required=True, help="parquet for verl's RLHFDataset")
    parser.add_argument("--system-prompt", choices=["paper", "none"], default="paper",
                        help="prepend the paper's system prompt as a system message (default paper)")  # fmt: skip
    parser.add_argument("--split", default="train", help="extra_info.split (default train)")
    parser.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.data.rl_export import ExportConfig, export_parquet
    from verl_falcon_plugin.data.rl_rollouts import PAPER_SYSTEM_PROMPT

    system_prompt = PAPER_SYSTEM_PROMPT if args.system_prompt == "paper" else None
    config = ExportConfig(system_prompt=system_prompt, split=args.split)
    summary = export_parquet(args.problems, args.out, config)
    print(f"export: {summary['problems']} problems {summary['domains']} -> {args.out}")
    return 0
