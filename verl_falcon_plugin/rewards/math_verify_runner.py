"""math-verify under a hard per-call deadline, safe from any thread or event loop.

math-verify bounds its own work with ``signal.alarm``, which only works in the main
thread: from a worker thread, an asyncio executor or a threaded Ray actor ``parse``
raises, and verl's wrapper turns that into a silent 0. When the alarm *does* fire,
``parse`` returns ``[]`` and the answer is graded wrong, again silently.

Here each call runs in a long-lived worker *process* (math-verify's own timeouts off),
and the caller waits on a pipe with a deadline. A worker that misses it is killed and
replaced, and the call returns :attr:`RewardStatus.TIMEOUT`. Workers are handed out one
call at a time from a queue, so any number of threads may call :meth:`verify` at once.
"""

from __future__ import annotations

import atexit
import collections
import functools
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from verl_falcon_plugin.rewards.result import RewardStatus

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_WORKER_MEMORY_MB = 4096  # a runaway sympy power must not take the host's RAM


@dataclass(frozen=True)
class VerifyOutcome:
    status: RewardStatus  # CORRECT, WRONG, TIMEOUT or ERROR
    seconds: float
    detail: str = ""


def gold_for_parsing(gold: str) -> str:
    """Gold answers are bare LaTeX: put them in math mode, as math-verify's documentation does (``$...$``).

    Not ``\\boxed{...}`` (verl's spelling): math-verify keeps a boxed percent (``\\boxed{28\\%}``) as a
    plain string, so ``28`` would not match it. A gold that already has delimiters is kept as it is.
    """
    if "\\boxed" in gold or "$" in gold.replace("\\$", ""):
        return gold
    return "$" + gold + "$"


@functools.lru_cache(maxsize=4096)
def _parsed_gold(gold: str) -> list:
    """Each worker parses a gold once: the G responses of a GRPO group share it."""
    from math_verify import parse

    return parse(gold_for_parsing(gold), parsing_timeout=None)


def verify_in_this_process(gold: str, prediction: str) -> bool:
    """math-verify's verdict (gold first), without its signal-based timeouts.

    Runs in the worker processes; also the "math-verify alone" baseline of the tests
    and the benchmark (there in the main thread, where no bound is needed).
    """
    from math_verify import parse, verify

    pred_parsed = parse(prediction, parsing_timeout=None)
    return bool(verify(_parsed_gold(gold), pred_parsed, timeout_seconds=None))


WARM_UP = (
    ("\\frac{1}{2}", "\\boxed{0.5}"),
    ("x^{2} - 2 x - 24", "\\boxed{(x-6)(x+4)}"),
    ("(-3,7]", "\\boxed{[-3,7]}"),
    ("\\{1,2\\}", "\\boxed{\\{2,1\\}}"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}"),
    ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}"),
)


def _limit_memory(megabytes: int | None) -> None:
    if not megabytes:
        return
    import resource

    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main(memory_mb: int | None) -> None:
    """The worker process: one JSON request per stdin line, one JSON reply per stdout line."""
    _limit_memory(memory_mb)
    # math-verify warns once per process that its timeouts are off: that is the point here.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    # Pay the imports (sympy, the LaTeX grammar, and the lazily imported parts of sympy that
    # polynomials, intervals, sets and matrices need: ~1 s each the first time) before "ready",
    # not inside the first deadlines.
    for gold, prediction in WARM_UP:
        verify_in_this_process(gold, prediction)

    out = sys.stdout
    # From here on nobody reads our stderr: send it (and stray prints) to /dev/null so that a
    # chatty library can neither fill the pipe nor corrupt the reply stream.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": verify_in_this_process(request["gold"], request["prediction"])}
        except MemoryError:
            reply = {"error": "MemoryError: the worker's memory limit was hit"}
        except Exception as err:  # reported to the caller as ERROR with the reason
            reply = {"error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _read_line(proc: subprocess.Popen, timeout_s: float) -> str | None:
    """One line from the worker, or None when none came within ``timeout_s``."""
    readable, _, _ = select.select([proc.stdout], [], [], max(timeout_s, 0.0))
    if not readable:
        return None
    return proc.stdout.readline()


class _Worker:
    # A fresh interpreter via ``python -m``, not multiprocessing: spawn/forkserver re-import
    # the caller's ``__main__`` (breaking unguarded scripts), and fork from a threaded Ray
    # actor can deadlock.
    def __init__(self, memory_mb: int | None, start_timeout_s: float, python: str):
        # The caller's sys.path, so that the worker imports what it imports (Ray runtime envs
        # and pytest rootdirs extend sys.path without touching PYTHONPATH).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.process = subprocess.Popen(
            [python, "-m", __name__, str(memory_mb or 0)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )
        ready = _read_line(self.process, start_timeout_s)
        if ready is None or not ready.startswith('{"ready"'):
            self.kill()
            why = "did not start within %.0fs" % start_timeout_s if ready is None else "exited before it was ready"
            raise RuntimeError(f"math-verify worker {why}: {self._stderr_tail()}")
        self.process.stderr.close()  # nothing reads it from now on: it must not fill up and block the worker

    def ask(self, gold: str, prediction: str, timeout_s: float) -> dict | None:
        self.process.stdin.write(json.dumps({"gold": gold, "prediction": prediction}) + "\n")
        self.process.stdin.flush()
        line = _read_line(self.process, timeout_s)
        if line is None:
            return None
        if not line:
            raise EOFError(f"worker exited with {self.process.poll()}")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        try:
            return self.process.stderr.read()[-2000:].strip() or "(no stderr)"
        except (OSError, ValueError):
            return "(stderr unavailable)"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


class MathVerifyPool:
    """A fixed number of math-verify worker processes; thread-safe; killed workers are replaced."""

    def __init__(
        self,
        max_workers: int = 2,
        *,
        memory_mb: int | None = DEFAULT_WORKER_MEMORY_MB,
        start_timeout_s: float = 120.0,
        python: str | None = None,
    ):
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.memory_mb = memory_mb
        self.start_timeout_s = start_timeout_s
        self.python = python or sys.executable  # an interpreter that can import this package and math-verify
        self._idle: collections.deque[_Worker] = collections.deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a worker came back or a slot was freed
        self._started = 0
        self._closed = False
        self.timeouts = 0

    def _acquire(self) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("MathVerifyPool is closed")
                if self._idle:
                    return self._idle.popleft()
                if self._started < self.max_workers:
                    self._started += 1
                    break
                self._changed.wait()
        try:  # started outside the lock: other callers keep using the running workers meanwhile
            return _Worker(self.memory_mb, self.start_timeout_s, self.python)
        except BaseException:
            with self._changed:
                self._started -= 1
                self._changed.notify()
            raise

    def _release(self, worker: _Worker) -> None:
        with self._changed:
            if self._closed:
                worker.kill()
                return
            self._idle.append(worker)
            self._changed.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._changed:
            self._started -= 1
            self._changed.notify()

    def start_all(self) -> None:
        """Start every worker now, in parallel, so that no later call pays math-verify's imports."""
        with ThreadPoolExecutor(self.max_workers) as threads:
            workers = list(threads.map(lambda _: self._acquire(), range(self.max_workers)))
        for worker in workers:
            self._release(worker)

    def verify(self, gold: str, prediction: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyOutcome:
        """math-verify's verdict on ``prediction`` (gold first), within ``timeout_s`` of compute time."""
        worker = self._acquire()
        start = time.perf_counter()
        try:
            reply = worker.ask(gold, prediction, timeout_s)
        except (EOFError, OSError, ValueError) as err:
            self._discard(worker)
            return VerifyOutcome(RewardStatus.ERROR, time.perf_counter() - start, f"math-verify worker died: {err!r}")
        except BaseException:
            self._discard(worker)
            raise
        if reply is None:
            self._discard(worker)
            with self._lock:
                self.timeouts += 1
            return VerifyOutcome(
                RewardStatus.TIMEOUT, time.perf_counter() - start, f"math-verify ran past {timeout_s}s"
            )
        self._release(worker)
        seconds = time.perf_counter() - start
        if "error" in reply:
            return VerifyOutcome(RewardStatus.ERROR, seconds, reply["error"])
        return VerifyOutcome(RewardStatus.CORRECT if reply["ok"] else RewardStatus.WRONG, seconds)

    def close(self) -> None:
        """Kill the idle workers now; busy ones are killed when their call returns."""
        with self._changed:
            self._closed = True
            idle, self._idle = list(self._idle), collections.deque()
            self._changed.notify_all()
        for worker in idle:
            worker.kill()


def default_worker_count() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_default_pool: MathVerifyPool | None = None
_default_pool_pid: int | None = None
_default_lock = threading.Lock()


def default_pool() -> MathVerifyPool:
    """The process-wide pool: ``FALCON_H1R_MATH_WORKERS`` workers (default: one per core).

    One per PID, so that a forked process never shares its parent's pipes.
    """
    global _default_pool, _default_pool_pid
    with _default_lock:
        if _default_pool is None or _default_pool_pid != os.getpid():
            workers = int(os.environ.get("FALCON_H1R_MATH_WORKERS", default_worker_count()))
            _default_pool = MathVerifyPool(max_workers=workers)
            _default_pool_pid = os.getpid()
        return _default_pool


@atexit.register
def _close_default_pool() -> None:
    if _default_pool is not None and _default_pool_pid == os.getpid():
        _default_pool.close()


if __name__ == "__main__":
    worker_main(int(sys.argv[1]) or None)
