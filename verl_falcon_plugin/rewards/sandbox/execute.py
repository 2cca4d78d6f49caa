"""One sandboxed command: start the launcher, collect its output under a cap and a deadline, classify the end.

Every descriptor and file this opens is acquired inside ``try``/``finally``: a request that fails anywhere
leaves the server's descriptor count where it was.
"""

from __future__ import annotations

import collections
import json
import os
import select
import selectors
import signal
import tempfile
import time
from dataclasses import dataclass, field

from verl_falcon_plugin.rewards.sandbox.cgroups import RunCgroup
from verl_falcon_plugin.rewards.sandbox.zygote import Zygote

#: the launcher enforces the wall-clock limit itself; the server's deadline (limit + this) is a backstop
LAUNCH_GRACE_S = 5.0
PATH = "/usr/local/bin:/usr/bin:/bin"
#: per-command CLOCK_MONOTONIC instants (requested, launcher, unshared, init, mounted, exited, collected) of the
#: latest commands: where a run's time goes (benchmarks/sandbox_throughput.py reads them)
RECENT_PHASES: collections.deque[dict[str, float]] = collections.deque(maxlen=4096)


@dataclass
class Command:
    argv: list[str]
    workdir: str
    uid: int
    gid: int
    timeout_s: float
    rlimits: dict[str, int]
    namespaces: tuple[str, ...]
    max_output_bytes: int
    stdin: str | None = None
    cgroup: RunCgroup | None = None
    seccomp: bool = False  # load the zygote's syscall filter in the program
    scratch_dir: str = field(default_factory=tempfile.gettempdir)  # where the stdin file is spooled (server side)


def command_result(
    status: str,
    *,
    time_s: float | None = None,
    return_code: int | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
    cpu_s: float | None = None,
) -> dict:
    """Sandbox-Fusion's ``CommandRunResult`` (plus ``cpu_time``, which its client ignores)."""
    return {
        "status": status,
        "execution_time": time_s,
        "cpu_time": cpu_s,
        "return_code": return_code,
        "stdout": stdout,
        "stderr": stderr,
    }


def execute(command: Command, zygote: Zygote) -> dict:
    """Run ``command`` through a launcher forked by ``zygote``; its ``CommandRunResult``."""
    config = {
        "argv": command.argv,
        "cwd": command.workdir,
        "env": {"PATH": PATH, "HOME": command.workdir, "TMPDIR": command.workdir, "LANG": "C.UTF-8"},
        "uid": command.uid,
        "gid": command.gid,
        "rlimits": command.rlimits,
        "namespaces": list(command.namespaces),
        "writable": [command.workdir],
        "work_root": os.path.dirname(command.workdir),
        "timeout_s": command.timeout_s,
        "cgroup_procs": command.cgroup.procs_files if command.cgroup is not None else [],
        "seccomp": command.seccomp,
    }
    ours: list[int] = []  # every descriptor this call opens, closed in the finally whatever happens
    theirs: list[int] = []
    pidfd = -1
    stdin_file = None
    try:
        out_read, out_write = _pipe(ours, theirs)
        err_read, err_write = _pipe(ours, theirs)
        status_read, status_write = _pipe(ours, theirs)
        if command.stdin is not None:
            stdin_file = tempfile.TemporaryFile(dir=command.scratch_dir)
            stdin_file.write(command.stdin.encode())
            stdin_file.seek(0)
            stdin_fd = stdin_file.fileno()
        else:
            stdin_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            theirs.append(stdin_fd)
        start = time.monotonic()
        config["requested_at"] = start
        pidfd = zygote.spawn(config, [stdin_fd, out_write, err_write, status_write])
        for fd in theirs:  # the launcher has its copies: EOF on the pipes now means every writer is gone
            os.close(fd)
        theirs.clear()
        deadline = start + command.timeout_s + LAUNCH_GRACE_S
        stdout, stderr, killed_for = _collect(pidfd, out_read, err_read, deadline, command.max_output_bytes)
        elapsed = time.monotonic() - start
        raw_status = os.read(status_read, 1 << 16)
    finally:
        if pidfd >= 0:
            if not _exited(pidfd, 0):  # only on an exception above: never leave a launcher running
                _kill(pidfd)
            os.close(pidfd)
        for fd in ours + theirs:
            os.close(fd)
        if stdin_file is not None:
            stdin_file.close()
    report = json.loads(raw_status) if raw_status else {}
    if "phases" in report:
        RECENT_PHASES.append(report.pop("phases") | {"collected": time.monotonic()})
    return _classify(command, report, elapsed, stdout, stderr, killed_for)


def _pipe(ours: list[int], theirs: list[int]) -> tuple[int, int]:
    read, write = os.pipe2(os.O_CLOEXEC)
    ours.append(read)
    theirs.append(write)
    return read, write


def _exited(pidfd: int, timeout: float) -> bool:
    """A pidfd polls readable once its process has exited."""
    return bool(select.select([pidfd], [], [], timeout)[0])


def _kill(pidfd: int) -> None:
    """SIGKILL the launcher (its init follows through PDEATHSIG, and the pid namespace with it); wait for it."""
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _exited(pidfd, 10.0)


def _classify(
    command: Command, report: dict, elapsed: float, stdout: bytes, stderr: bytes, killed_for: str | None
) -> dict:
    out = stdout.decode(errors="replace")
    err = stderr.decode(errors="replace")
    if "setup_error" in report:
        return command_result("Error", stderr=f"sandbox setup failed: {report['setup_error']}\n{err}")
    events = command.cgroup.events() if command.cgroup is not None else {}
    if events.get("oom_kills"):
        err += (
            f"\n[sandbox] the run exceeded its memory budget ({command.rlimits['AS'] >> 20} MiB, files in the "
            f"work directory included): the kernel killed {events['oom_kills']} process(es)\n"
        )
    if events.get("forks_refused"):
        err += f"\n[sandbox] the run reached its process budget: {events['forks_refused']} fork(s) refused\n"
    wall = report.get("wall_s", elapsed)
    cpu = report.get("cpu_s")
    if killed_for == "timeout" or report.get("timed_out") or wall > command.timeout_s:
        return command_result("TimeLimitExceeded", time_s=wall, stdout=out, stderr=err, cpu_s=cpu)
    if killed_for == "output":
        err += f"\n[sandbox] output exceeded {command.max_output_bytes} bytes: the program was killed\n"
        return command_result("Finished", time_s=wall, return_code=-signal.SIGKILL, stdout=out, stderr=err)
    if not report:
        return command_result("Error", stderr=f"sandbox launcher exited without a report\n{err}")
    if report.get("signal") == signal.SIGXCPU:  # RLIMIT_CPU: the CPU-time limit is a time limit
        return command_result("TimeLimitExceeded", time_s=wall, stdout=out, stderr=err, cpu_s=cpu)
    code = -report["signal"] if "signal" in report else report["exit_code"]
    return command_result("Finished", time_s=wall, return_code=code, stdout=out, stderr=err, cpu_s=cpu)


def _collect(pidfd: int, out_fd: int, err_fd: int, deadline: float, cap: int) -> tuple[bytes, bytes, str | None]:
    """Read stdout/stderr until both close, the deadline passes, or the output cap is hit."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    total = 0
    killed_for = None
    with selectors.DefaultSelector() as selector:
        selector.register(out_fd, selectors.EVENT_READ)
        selector.register(err_fd, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                killed_for = "timeout"
                break
            # once the launcher has exited, the program's output is all in the pipes; a leftover
            # background process (possible only without a pid namespace) must not hold us
            launcher_done = _exited(pidfd, 0)
            ready = selector.select(timeout=0 if launcher_done else min(remaining, 0.05))
            if launcher_done and not ready:
                break
            for key, _ in ready:
                data = os.read(key.fd, 1 << 16)
                if not data:
                    selector.unregister(key.fd)
                    continue
                chunks[key.fd].append(data)
                total += len(data)
            if total > cap:
                killed_for = "output"
                break
    if killed_for is not None or not _exited(pidfd, 0):
        _kill(pidfd)
    return b"".join(chunks[out_fd])[:cap], b"".join(chunks[err_fd])[:cap], killed_for
