"""``python -m verl_falcon_plugin.demo [--quick] [--out out/demo] [--from STAGE]``: run (or resume) the demo."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from verl_falcon_plugin.demo.config import PRESETS
from verl_falcon_plugin.demo.runner import Context, default_vllm_python, run_stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the short variant (CI): fewer problems and steps")
    parser.add_argument("--out", default=None, help="output folder (default out/demo, or out/demo-quick)")
    parser.add_argument("--from", dest="restart_from", metavar="STAGE", help="redo STAGE and every stage after it")
    parser.add_argument("--vllm-python", help="python of the vLLM environment (default .venv-vllm/bin/python)")


def run_demo(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.demo.stages import STAGES, repo_root, vllm_env_ok

    preset = "quick" if args.quick else "full"
    config = PRESETS[preset]
    repo = repo_root()
    out = Path(args.out or f"out/demo{'-quick' if args.quick else ''}").resolve()
    vllm_python = Path(args.vllm_python) if args.vllm_python else default_vllm_python(repo)
    vllm_env_ok(vllm_python)
    out.mkdir(parents=True, exist_ok=True)
    settings = out / "settings.json"
    if settings.exists() and _saved_settings(settings) != config.as_dict():
        raise SystemExit(f"{out} holds a run with other settings ({settings}); use another --out or delete it")
    settings.write_text(json.dumps(config.as_dict(), indent=1) + "\n")
    ctx = Context(out=out, config=config, repo=repo, python=Path(sys.executable), vllm_python=vllm_python)
    print(f"Falcon-H1R demo ({preset}) -> {out}; logs in {out / 'logs'}; rerun to resume")
    code = run_stages(STAGES, ctx, restart_from=args.restart_from)
    if (out / "report.md").exists():
        print(f"report: {out / 'report.md'}")
    return code


def _saved_settings(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:  # a truncated or hand-edited file: say where, not a traceback
        raise SystemExit(f"{path}:{err.lineno}: not valid JSON ({err.msg}); delete it or use another --out") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m verl_falcon_plugin.demo", description=__doc__)
    add_arguments(parser)
    return run_demo(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
