"""Run verl's real entry points as subprocesses on CPU and read back what the trainer logged.

Shared by ``tests/cpu_trainer`` and the toy pipeline: :func:`run_trainer` launches a
command with ``VERL_PLATFORM=cpu``, samples the peak resident memory of its whole process
tree (driver, Ray and its workers, torchrun ranks), and returns the log;
:func:`console_metrics` parses verl's console logger lines (``step:N - key:value - ...``).
:func:`leftover_processes` finds anything still running from a private Ray temp dir.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from verl_falcon_plugin.requires import require

_STEP_LINE = re.compile(r"step:(\d+) - (.*)$")
_NUMBER = re.compile(r"^(?:np\.\w+\()?(-?[\d.]+(?:e[-+]?\d+)?|nan|inf|-inf)\)?$")


@dataclass
class TrainerRun:
    command: list[str]
    returncode: int
    log: str
    wall_s: float
    peak_rss_bytes: int
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)

    def summary(self) -> str:
        return f"rc={self.returncode} wall={self.wall_s:.1f}s peak_rss={self.peak_rss_bytes / 2**30:.2f}GiB"


def console_metrics(log: str) -> dict[int, dict[str, float]]:
    """verl console-logger metrics by step (``val-*`` at step 0 included); non-numeric values skipped."""
    steps: dict[int, dict[str, float]] = {}
    for line in log.splitlines():
        match = _STEP_LINE.search(line)
        if not match:
            continue
        metrics = steps.setdefault(int(match.group(1)), {})
        for item in match.group(2).split(" - "):
            key, _, value = item.partition(":")
            number = _NUMBER.match(value.strip())
            if number:
                metrics[key.strip()] = float(number.group(1))
    return steps


def _tree_rss(psutil, root) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_trainer(command: Sequence[str], *, cwd: str | Path, timeout_s: float, env: dict | None = None) -> TrainerRun:
    """Run ``command`` with ``VERL_PLATFORM=cpu``; peak RSS is summed over its process tree every 0.5 s."""
    psutil = require("psutil", "measuring the trainer's memory")
    full_env = {**os.environ, "VERL_PLATFORM": "cpu", "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    log_path = Path(cwd) / "trainer.log"
    start = time.monotonic()
    peak = 0
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(list(command), cwd=cwd, env=full_env, stdout=log_file, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, _tree_rss(psutil, root))
                done.wait(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for child in root.children(recursive=True):
                child.kill()
            proc.kill()
            returncode = proc.wait()
        finally:
            done.set()
            sampler.join()
    log = log_path.read_text(errors="replace")
    return TrainerRun(list(command), returncode, log, time.monotonic() - start, peak, console_metrics(log))


def leftover_processes(marker: str) -> list[str]:
    """Command lines of running processes that mention ``marker`` (e.g. a private Ray temp dir)."""
    psutil = require("psutil", "checking for leftover processes")
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info.get("cmdline") or [])
        if marker in cmdline and process.pid != os.getpid():
            found.append(f"{process.pid}: {cmdline[:200]}")
    return found


def main_ppo_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "verl.trainer.main_ppo", "+plugin=falcon_h1r_cpu", *overrides]
