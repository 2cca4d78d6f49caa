"""``falcon-h1r deepconf run``: DeepConf online (Algorithm 2) over a JSONL of problems with vLLM.

Settings come from ``--config`` (a YAML file with these option names, e.g.
``recipes/tts/deepconf.yaml``) and are overridden by the command line. Defaults are
the Falcon-H1R paper's: K=512 traces, N_init=16, window 2048, η=0.1, 64K tokens,
temperature 0.6, top-p 0.95.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from verl_falcon_plugin.cli import CliError, input_file, input_file_or_empty

logger = logging.getLogger(__name__)

ENGINE_OPTIONS = ("dtype", "max_model_len", "tensor_parallel_size", "kv_cache_memory_bytes", "enforce_eager")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("deepconf", help="DeepConf test-time scaling with vLLM", description=__doc__)
    commands = parser.add_subparsers(dest="deepconf_command", required=True, metavar="SUBCOMMAND")
    run = commands.add_parser("run", help="run DeepConf online on a JSONL of problems", description=__doc__)
    run.add_argument(
        "input", metavar="PROBLEMS.jsonl", type=input_file, help="rows with 'prompt' or 'problem', and 'answer'"
    )
    run.add_argument("--out", required=True, metavar="DIR", help="results.jsonl, summary.{json,md}, plots")
    run.add_argument(
        "--config", metavar="YAML", type=input_file_or_empty, help="defaults for the options below (command line wins)"
    )
    engine = run.add_mutually_exclusive_group()
    engine.add_argument("--model", help="model path for an offline vllm.LLM")
    engine.add_argument("--server", metavar="URL", help="OpenAI-compatible vLLM server (with this package installed)")
    run.add_argument("--served-model", help="model name on the server (default: --model's value)")
    algo = run.add_argument_group("algorithm (Algorithm 2)")
    algo.add_argument("--budget", type=int, help="traces per problem, K (512)")
    algo.add_argument("--n-init", type=int, help="warm-up traces, N_init (16)")
    algo.add_argument("--eta", type=float, help="fraction of warm-up traces kept (0.1: aggressive)")
    algo.add_argument("--window", type=int, help="group confidence window, tokens (2048)")
    algo.add_argument("--batch-size", type=int, help="online traces per engine call (64)")
    algo.add_argument("--consensus", type=float, help="stop a problem at this vote share, tau (off)")
    algo.add_argument("--token-budget", type=int, help="stop a problem after this many tokens (off)")
    sampling = run.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, help="(0.6)")
    sampling.add_argument("--top-p", type=float, help="(0.95)")
    sampling.add_argument("--max-tokens", type=int, help="per trace (65536)")
    sampling.add_argument("--top-k", type=int, help="log-probs per token in the confidence (20)")
    sampling.add_argument("--seed", type=int)
    eng = run.add_argument_group("offline engine")
    eng.add_argument("--dtype")
    eng.add_argument("--max-model-len", type=int)
    eng.add_argument("--tensor-parallel-size", type=int)
    eng.add_argument("--kv-cache-memory-bytes", type=int)
    eng.add_argument("--enforce-eager", action="store_const", const=True)
    run.add_argument("--plots", type=int, help="confidence plots for the first N problems (1)")
    run.set_defaults(func=run_command)


#: the paper's settings; --config YAML values replace them, command-line values replace both
DEFAULTS = dict(
    model=None,
    server=None,
    served_model=None,
    budget=512,
    n_init=16,
    eta=0.1,
    window=2048,
    batch_size=64,
    consensus=None,
    token_budget=None,
    temperature=0.6,
    top_p=0.95,
    max_tokens=65536,
    top_k=20,
    seed=None,
    dtype="auto",
    max_model_len=None,
    tensor_parallel_size=1,
    kv_cache_memory_bytes=None,
    enforce_eager=False,
    plots=1,
)


def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """Paper defaults < ``--config`` YAML < command line."""
    values = dict(DEFAULTS)
    if args.config:
        import yaml

        with open(args.config) as f:
            try:
                loaded = yaml.safe_load(f) or {}
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f"{args.config}:{mark.line + 1}" if mark else args.config
                raise CliError(f"--config {where}: not valid YAML ({getattr(err, 'problem', None) or err})") from err
        if not isinstance(loaded, dict):
            raise CliError(f"--config {args.config}: expected a mapping of option: value, got {type(loaded).__name__}")
        loaded = {str(k).replace("-", "_"): v for k, v in loaded.items()}
        unknown = sorted(set(loaded) - set(DEFAULTS))
        if unknown:
            raise CliError(f"--config {args.config}: unknown keys {unknown}; known: {sorted(DEFAULTS)}")
        values.update(loaded)
    values.update({k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None})
    return argparse.Namespace(**{**vars(args), **values})


def run_command(args: argparse.Namespace) -> int:
    from vllm_plugins.deepconf.online import OnlineConfig
    from vllm_plugins.deepconf.runner import (
        OfflineVLLMGenerator,
        SamplingSettings,
        ServerGenerator,
        load_problems,
        run_problems,
        summary_markdown,
    )

    args = resolve_settings(args)
    if args.model is None and args.server is None:
        raise CliError("give --model (offline vllm.LLM) or --server URL")
    problems = _load_problems(load_problems, args.input)  # a bad row fails now, not after loading a model
    config = OnlineConfig(
        budget=args.budget,
        n_init=args.n_init,
        eta=args.eta,
        window=args.window,
        batch_size=args.batch_size,
        consensus=args.consensus,
        token_budget=args.token_budget,
        vote_window=args.window,
    )
    sampling = SamplingSettings(args.temperature, args.top_p, args.max_tokens, args.top_k, args.seed)
    if args.server:
        model_name = args.served_model or args.model
        if not model_name:
            raise CliError("--server needs --served-model (the name the server serves)")

        def make_generator(problem):
            return ServerGenerator(args.server, model_name, problem.prompt, sampling)
    else:
        from verl_falcon_plugin.requires import require

        vllm = require("vllm", "falcon-h1r deepconf run --model")
        engine_kwargs = {k: getattr(args, k) for k in ENGINE_OPTIONS if getattr(args, k) not in (None, False)}
        llm = vllm.LLM(args.model, seed=args.seed or 0, **engine_kwargs)
        problems = _load_problems(load_problems, args.input, llm.get_tokenizer())

        def make_generator(problem):
            return OfflineVLLMGenerator(llm, problem.prompt, sampling)

    summary = run_problems(problems, make_generator, config, Path(args.out), plots=args.plots)
    print(summary_markdown(summary))
    return 0


def _load_problems(load_problems, path: str, tokenizer=None) -> list:
    """The runner's loader, its row errors (which name file:line) reported as usage errors."""
    try:
        return load_problems(path, tokenizer)
    except ValueError as err:  # the loader names file:line and the missing field
        raise CliError(str(err)) from err
