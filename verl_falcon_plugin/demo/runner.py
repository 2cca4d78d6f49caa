"""Runs the demo's stages in order, resumably: a finished stage leaves ``stages/<name>.json`` (its wall
time, peak memory and numbers) and is skipped on the next run; a failed one leaves nothing, so a rerun
continues from it. Progress is one live line per running stage (rich)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from verl_falcon_plugin.demo.config import DemoConfig
from verl_falcon_plugin.demo.procs import PeakMemory, StageFailed, run_logged, vllm_server


class StageNotRun(RuntimeError):
    """A stage that cannot run in this environment; the reason goes into the report, never a fake result."""


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[["Context"], dict[str, Any]]
    needs: tuple[str, ...] = ()
    #: the model directory (relative to out) this stage serves with vLLM, if any
    serves: str | None = None
    #: what the stage writes (relative to out): removed when ``--from`` redoes the stage, so that nothing
    #: it would otherwise resume from (appended rollouts, checkpoints) belongs to an older upstream result
    outputs: tuple[str, ...] = ()


@dataclass
class Context:
    out: Path
    config: DemoConfig
    repo: Path
    python: Path  # the verl environment
    vllm_python: Path  # the vLLM environment
    status: Callable[[str], None] = lambda msg: None
    _servers: dict[str, tuple[ExitStack, str]] = field(default_factory=dict)

    @property
    def vllm_bin(self) -> Path:
        return self.vllm_python.parent

    def log(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def sh(self, cmd: list[Any], log: str, env: dict[str, str] | None = None, timeout_s: float = 1800) -> None:
        def show(line: str) -> None:
            if line.strip():
                self.status(line.strip()[:110])

        run_logged([str(c) for c in cmd], self.log(log), env=env, cwd=self.repo, on_line=show, timeout_s=timeout_s)

    def server(self, model_rel: str) -> str:
        """The URL of a vLLM server on ``out/model_rel`` (started once, shared by consecutive stages)."""
        if model_rel not in self._servers:
            self.close_servers()
            stack = ExitStack()
            url = stack.enter_context(vllm_server(
                self.vllm_python, self.out / model_rel, "demo", self.log(f"vllm_{model_rel}"),
                max_model_len=1024, on_line=self.status,
            ))  # fmt: skip
            self._servers[model_rel] = (stack, url)
        return self._servers[model_rel][1]

    def close_servers(self, keep: str | None = None) -> None:
        for name in [n for n in self._servers if n != keep]:
            self._servers.pop(name)[0].close()


def marker(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def load_markers(out: Path) -> dict[str, dict[str, Any]]:
    folder = out / "stages"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


def run_stages(stages: list[Stage], ctx: Context, *, restart_from: str | None = None) -> int:
    """Run every stage not yet done; returns 0 when all ran, 1 on a failure, 2 when some could not run."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)  # whole lines in logs (no wrapping at 80 columns)
    if restart_from:
        names = [s.name for s in stages]
        if restart_from not in names:
            raise SystemExit(f"--from {restart_from!r}: not a stage; stages are {names}")
        for stage in stages[names.index(restart_from) :]:
            marker(ctx.out, stage.name).unlink(missing_ok=True)
            for output in stage.outputs:
                target = ctx.out / output
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
    blocked: dict[str, str] = {}
    try:
        for number, stage in enumerate(stages, 1):
            head = f"[{number}/{len(stages)}] {stage.title}"
            done = marker(ctx.out, stage.name)
            if done.exists():
                earlier = json.loads(done.read_text())["wall_s"]
                console.print(f"[green]✓[/] {head} [dim](done earlier, {earlier:.0f} s)")
                continue
            missing = [n for n in stage.needs if n in blocked]
            if missing:
                blocked[stage.name] = f"needs {', '.join(missing)}, which did not run"
                _not_run(ctx.out, stage.name, blocked[stage.name])
                console.print(f"[yellow]–[/] {head}: not run ({blocked[stage.name]})")
                continue
            if stage.serves is None:
                ctx.close_servers()
            result = _run_one(stage, ctx, head, console)
            if isinstance(result, str):
                blocked[stage.name] = result
        ctx.close_servers()
    except StageFailed as err:
        ctx.close_servers()
        console.print(f"[red]✗ {err}[/]\nRerun the same command to continue from this stage.")
        return 1
    return 2 if blocked else 0


def _run_one(stage: Stage, ctx: Context, head: str, console: Any) -> dict[str, Any] | str:
    started = time.monotonic()
    with console.status(head) as live, PeakMemory() as memory:
        ctx.status = lambda msg: live.update(f"{head} [dim]{msg}")
        try:
            numbers = stage.run(ctx)
        except StageNotRun as err:
            _not_run(ctx.out, stage.name, str(err))
            console.print(f"[yellow]–[/] {head}: NOT RUN: {err}")
            return str(err)
    wall = time.monotonic() - started
    record = {"stage": stage.name, "wall_s": round(wall, 1), "peak_rss_mb": round(memory.peak / 2**20), **numbers}
    path = marker(ctx.out, stage.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    (ctx.out / "stages" / f"{stage.name}.not_run").unlink(missing_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    summary = ", ".join(f"{k} {v}" for k, v in numbers.items() if isinstance(v, (int, float, str)))[:150]
    console.print(f"[green]✓[/] {head} [dim]{wall:.0f} s, peak {record['peak_rss_mb']} MB[/] {summary}")
    return record


def _not_run(out: Path, name: str, reason: str) -> None:
    path = out / "stages" / f"{name}.not_run"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(reason + "\n")


def default_vllm_python(repo: Path) -> Path:
    return repo / ".venv-vllm" / "bin" / "python"


def copy_tokenizer(source: Path, target: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        if (source / name).exists():
            shutil.copy2(source / name, target / name)


def python_of_this_env() -> Path:
    return Path(sys.executable)
