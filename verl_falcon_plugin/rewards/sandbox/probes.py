"""Start-up probes: each isolation mechanism is shown to work on this host with a harmless program,
never assumed. The results are what ``GET /isolation`` reports."""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from verl_falcon_plugin.rewards.sandbox.runner import Sandbox

logger = logging.getLogger(__name__)

ALL_NAMESPACES = ("pid", "mount", "net", "ipc", "uts")

#: what a run loses when a mechanism is not in force (printed by ``--allow-unisolated``)
LOSSES = {
    "pid": "a program's leftover processes are found only by scanning its uid, not killed with a namespace",
    "mount": "programs can write /tmp, /dev/shm and every other world-writable directory of the host",
    "net": "programs can open network connections, to this server and to any host the machine reaches",
    "ipc": "programs share System V IPC objects and POSIX message queues with the host",
    "uts": "programs can see the real hostname (and, with the other losses, more of the host)",
    "cgroup": "memory and process count are bounded per process (rlimits), not per run: "
    "workers x processes x address space can exceed the machine",
    "tmpfs": "disk use is bounded per file (RLIMIT_FSIZE), not per run: a run can fill the host's disk and inodes",
    "seccomp": "programs can create user namespaces and reach bpf, io_uring, userfaultfd and keyrings: "
    "the kernel's whole attack surface is open",
}


def probe_namespaces(sandbox: "Sandbox", requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The namespaces that work here; ``requested`` ones must all work (no silent downgrade)."""
    true = [shutil.which("true") or "/bin/true"]
    if requested is not None:
        result = sandbox.probe(true, tuple(requested))
        if result["status"] != "Finished" or result["return_code"] != 0:
            raise RuntimeError(f"requested sandbox namespaces {requested} do not work here: {result['stderr']}")
        return tuple(requested)
    working = tuple(
        ns
        for ns in ALL_NAMESPACES
        if (r := sandbox.probe(true, (ns,)))["status"] == "Finished" and r["return_code"] == 0
    )
    if working and (r := sandbox.probe(true, working))["status"] != "Finished":
        raise RuntimeError(f"sandbox namespaces {working} work one by one but not together: {r['stderr']}")
    return working


def probe_process_cap(sandbox: "Sandbox", cap: int, attempts: int) -> dict:
    """Run a program that tries to start ``attempts`` sleeping children under ``RLIMIT_NPROC=cap``.

    The children only sleep and are killed with the run: the check is safe even when the cap
    does NOT bind, which is the point of running it before any fork bomb.
    """
    script = (
        "import os, subprocess, sys\n"
        "started = 0\n"
        f"for _ in range({attempts}):\n"
        "    try:\n"
        "        subprocess.Popen(['sleep', '30'])\n"
        "        started += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(started)\n"
    )
    rlimits = sandbox.limits.rlimits(10, sandbox.limits.memory_limit_mb) | {"NPROC": cap}
    argv = [sandbox.toolchains["python"].run_argv[0], "-E", "-s", "-B", "-c", script]
    # the pids budget is lifted for this probe: it must show the *rlimit* binds, on its own
    result = sandbox.probe(argv, sandbox.namespaces, rlimits, max_pids=attempts + 8)
    started = int(result["stdout"].strip() or -1) if result["status"] == "Finished" else -1
    return {
        "binds": 0 <= started < min(cap, attempts),
        "started": started,
        "cap": cap,
        "attempts": attempts,
        "result": result,
    }


USER_NAMESPACE_PROBE = (
    "import ctypes, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "print('created' if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno()))\n"
)


def probe_user_namespaces_blocked(sandbox: "Sandbox") -> dict:
    """A program calls ``unshare(CLONE_NEWUSER)``: blocked when the answer is not 'created'."""
    argv = [sandbox.toolchains["python"].run_argv[0], "-E", "-s", "-B", "-c", USER_NAMESPACE_PROBE]
    result = sandbox.probe(argv, sandbox.namespaces)
    answer = (result["stdout"] or "").strip()
    return {
        "blocked": result["status"] == "Finished" and answer not in ("created", ""),
        "answer": answer,
        "result": result,
    }
