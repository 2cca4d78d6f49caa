"""Executes Sandbox-Fusion ``/run_code`` requests on this machine, one bounded slot per worker.

What a run gets (each step verified at start-up, see :meth:`Sandbox.isolation`):

* a fresh work directory, owned by the slot's dedicated unprivileged uid/gid (``uids.py``);
  the program runs under that uid with ``no_new_privs`` (setuid binaries do not elevate);
* rlimits, hard = soft: CPU seconds, address space, processes (binding, because the uid is
  not root — proven by a probe before the server accepts work), file size, open files, no core;
* a wall-clock limit; on expiry the launcher's process group is SIGKILLed, which also kills the
  pid namespace's init and with it every process in the namespace;
* stdout/stderr capped at ``max_output_bytes`` (the program is killed when it writes more);
* an environment of PATH/HOME/TMPDIR/LANG only: nothing of the server's environment leaks;
* where the kernel allows it (root with CAP_SYS_ADMIN: checked, never assumed): new pid, mount,
  network, IPC and UTS namespaces. The network namespace has only a downed loopback, so no
  socket can reach anything; in the mount namespace every mount is read-only except the work
  directory, so the program cannot write to /tmp, /dev/shm or the project.

What it is NOT: a security boundary for hostile code on a shared host. The program shares the
kernel (one kernel bug away from root), sees the host's read-only filesystem (it can read any
world-readable file), and its memory is bounded per process (address space × process cap),
not per run (no cgroup). It is meant for model-generated code in RL and evaluation on a machine
you own; untrusted code on shared infrastructure needs Sandbox-Fusion in a VM/gVisor container.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from verl_falcon_plugin.rewards.sandbox.languages import Toolchain, for_code, toolchains
from verl_falcon_plugin.rewards.sandbox.uids import (
    DEFAULT_UID_BASE,
    SlotIdentity,
    claim_slot_identities,
    processes_of_uid,
)

logger = logging.getLogger(__name__)

LAUNCHER = str(Path(__file__).with_name("_launcher.py"))
ALL_NAMESPACES = ("pid", "mount", "net", "ipc", "uts")
#: the launcher enforces the wall-clock limit itself; the server's deadline (limit + this) is a backstop
LAUNCH_GRACE_S = 5.0


@dataclass(frozen=True)
class SandboxLimits:
    memory_limit_mb: int = 1024  # used when a request sends memory_limit_MB <= 0 (the client never sends it)
    compile_memory_limit_mb: int = 4096
    max_processes: int = 64
    max_file_size_mb: int = 64
    max_open_files: int = 256
    max_output_bytes: int = 1 << 20
    max_timeout_s: float = 60.0

    def rlimits(self, timeout_s: float, memory_mb: int) -> dict[str, int]:
        return {
            "CPU": math.ceil(timeout_s) + 1,
            "AS": memory_mb << 20,
            "NPROC": self.max_processes,
            "FSIZE": self.max_file_size_mb << 20,
            "NOFILE": self.max_open_files,
            "CORE": 0,
            "MEMLOCK": 0,
            "MSGQUEUE": 0,
        }


class RequestError(ValueError):
    """The request itself is malformed: answered with HTTP 400, naming the field."""


@dataclass
class _Slot:
    identity: SlotIdentity


def _command_result(
    status: str,
    *,
    time_s: float | None = None,
    return_code: int | None = None,
    stdout: str | None = None,
    stderr: str | None = None,
    cpu_s: float | None = None,
) -> dict:
    return {
        "status": status,
        "execution_time": time_s,
        "cpu_time": cpu_s,
        "return_code": return_code,
        "stdout": stdout,
        "stderr": stderr,
    }


class Sandbox:
    """Runs code in ``workers`` parallel slots; thread-safe (callers block while all slots are busy)."""

    def __init__(
        self,
        workers: int = 2,
        *,
        limits: SandboxLimits = SandboxLimits(),
        namespaces: tuple[str, ...] | None = None,
        uid_base: int = DEFAULT_UID_BASE,
        python: str | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise PermissionError(
                "the embedded sandbox must start as root so that it can run code under a dedicated unprivileged "
                "uid (RLIMIT_NPROC would otherwise count, and a fork bomb exhaust, your own processes); "
                "run it as root or use a Sandbox-Fusion deployment"
            )
        self.limits = limits
        self.toolchains: dict[str, Toolchain] = toolchains(python)
        self._identities = claim_slot_identities(workers, uid_base)
        self._slots: queue.Queue[_Slot] = queue.Queue()
        for identity in self._identities:
            self._slots.put(_Slot(identity))
        self.root = tempfile.mkdtemp(prefix="falcon-h1r-sandbox-")
        os.chmod(self.root, 0o711)  # slots may traverse to their own 0700 work directory, not list others
        self.workers = workers
        try:
            self.namespaces = self._probe_namespaces(namespaces)
            self.process_cap_binds = self._probe_process_cap()
        except BaseException:
            self.close()
            raise
        if not self.process_cap_binds:
            self.close()
            raise RuntimeError("RLIMIT_NPROC does not bind the sandbox uid: refusing to run code (fork bombs)")

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        for identity in self._identities:
            self._kill_uid(identity.uid)
            identity.release()
        shutil.rmtree(self.root, ignore_errors=True)

    def isolation(self) -> dict[str, Any]:
        return {
            "uid_drop": True,
            "slot_uids": [i.uid for i in self._identities],
            "namespaces": list(self.namespaces),
            "network_isolated": "net" in self.namespaces,
            "filesystem_read_only_outside_workdir": "mount" in self.namespaces,
            "pid_namespace_kills_leftovers": "pid" in self.namespaces,
            "process_cap_binds": self.process_cap_binds,
            "languages": sorted(self.toolchains),
            "work_root": self.root,
            "limits": self.limits.__dict__,
        }

    # ---------------------------------------------------------------- the protocol
    def run_code(self, request: dict[str, Any]) -> dict[str, Any]:
        """One ``/run_code`` request -> its response, both as Sandbox-Fusion's JSON objects."""
        code, language, compile_timeout, run_timeout, memory_mb, stdin, files, fetch = self._parse(request)
        toolchain = self.toolchains.get(language)
        if toolchain is None:
            return self._response(
                "SandboxError",
                f"language {language!r} is not supported by the embedded sandbox "
                f"(supported: {', '.join(sorted(self.toolchains))})",
            )
        toolchain = for_code(language, toolchain, code)
        slot = self._slots.get()
        try:
            return self._run_in_slot(
                slot, toolchain, code, compile_timeout, run_timeout, memory_mb, stdin, files, fetch
            )
        finally:
            self._slots.put(slot)

    def _parse(self, request: dict[str, Any]):
        if not isinstance(request, dict):
            raise RequestError("the body must be a JSON object")
        code = request.get("code")
        if not isinstance(code, str):
            raise RequestError("field 'code' is required and must be a string")
        language = request.get("language")
        if not isinstance(language, str):
            raise RequestError("field 'language' is required and must be a string (e.g. 'python')")
        timeouts = []
        for name in ("compile_timeout", "run_timeout"):
            value = request.get(name, 10)
            if not isinstance(value, (int, float)) or value <= 0:
                raise RequestError(f"field {name!r} must be a positive number of seconds, got {value!r}")
            timeouts.append(min(float(value), self.limits.max_timeout_s))
        memory_mb = request.get("memory_limit_MB", -1)
        if not isinstance(memory_mb, int):
            raise RequestError(f"field 'memory_limit_MB' must be an integer, got {memory_mb!r}")
        memory_mb = memory_mb if memory_mb > 0 else self.limits.memory_limit_mb
        stdin = request.get("stdin")
        if stdin is not None and not isinstance(stdin, str):
            raise RequestError("field 'stdin' must be a string or null")
        files = request.get("files") or {}
        fetch = request.get("fetch_files") or []
        if not isinstance(files, dict) or not isinstance(fetch, list):
            raise RequestError("field 'files' must be an object and 'fetch_files' a list")
        return code, language, timeouts[0], timeouts[1], memory_mb, stdin, files, fetch

    @staticmethod
    def _response(status: str, message: str = "", compile_result=None, run_result=None, files=None) -> dict:
        return {
            "status": status,
            "message": message,
            "compile_result": compile_result,
            "run_result": run_result,
            "executor_pod_name": None,
            "files": files or {},
        }

    def _run_in_slot(self, slot, toolchain, code, compile_timeout, run_timeout, memory_mb, stdin, files, fetch):
        uid = slot.identity.uid
        workdir = tempfile.mkdtemp(dir=self.root, prefix="run-")
        try:
            os.chown(workdir, uid, uid)
            os.chmod(workdir, 0o700)
            try:
                self._write_files(workdir, files, uid)
            except RequestError as err:
                return self._response("SandboxError", str(err))
            self._write(workdir, toolchain.source_name, code.encode(), uid)
            compile_result = None
            if toolchain.compile_argv is not None:
                compile_result = self._execute(
                    slot,
                    list(toolchain.compile_argv),
                    workdir,
                    compile_timeout,
                    None,
                    max(memory_mb, self.limits.compile_memory_limit_mb),
                )
            run_result = None
            if compile_result is None or (
                compile_result["status"] == "Finished" and compile_result["return_code"] == 0
            ):
                run_result = self._execute(slot, list(toolchain.run_argv), workdir, run_timeout, stdin, memory_mb)
            fetched = self._fetch_files(workdir, fetch)
            status, message = _overall_status(compile_result, run_result)
            return self._response(status, message, compile_result, run_result, fetched)
        finally:
            self._kill_uid(uid)
            shutil.rmtree(workdir, ignore_errors=True)

    # ---------------------------------------------------------------- files
    @staticmethod
    def _inside(workdir: str, name: str) -> str:
        if not isinstance(name, str) or not name or os.path.isabs(name):
            raise RequestError(f"file name {name!r} must be a non-empty relative path")
        path = os.path.realpath(os.path.join(workdir, name))
        if os.path.commonpath([path, os.path.realpath(workdir)]) != os.path.realpath(workdir):
            raise RequestError(f"file name {name!r} escapes the work directory")
        return path

    def _write_files(self, workdir: str, files: dict, uid: int) -> None:
        for name, content in files.items():
            if content is None:
                continue  # Sandbox-Fusion skips null contents too
            if not isinstance(content, str):
                raise RequestError(f"files[{name!r}] must be base64 text")
            self._inside(workdir, name)
            self._write(workdir, name, base64.b64decode(content), uid)

    @staticmethod
    def _write(workdir: str, name: str, data: bytes, uid: int) -> None:
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, uid, uid)

    def _fetch_files(self, workdir: str, names: list) -> dict[str, str]:
        fetched = {}
        for name in names:
            try:
                path = self._inside(workdir, name)  # realpath: a symlink planted by the program cannot leak a file
            except RequestError:
                continue
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                fetched[name] = base64.b64encode(f.read(self.limits.max_output_bytes)).decode()
        return fetched

    # ---------------------------------------------------------------- one sandboxed command
    def _execute(
        self,
        slot: _Slot,
        argv: list[str],
        workdir: str,
        timeout: float,
        stdin: str | None,
        memory_mb: int,
        namespaces: tuple[str, ...] | None = None,
        rlimits: dict | None = None,
    ) -> dict:
        identity = slot.identity
        status_read, status_write = os.pipe()
        config = {
            "argv": argv,
            "cwd": workdir,
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"},
            "uid": identity.uid,
            "gid": identity.gid,
            "rlimits": rlimits or self.limits.rlimits(timeout, memory_mb),
            "namespaces": list(self.namespaces if namespaces is None else namespaces),
            "writable": [workdir],
            "status_fd": status_write,
            "timeout_s": timeout,
        }
        stdin_file = None
        try:
            if stdin is not None:
                stdin_file = tempfile.TemporaryFile(dir=self.root)
                stdin_file.write(stdin.encode())
                stdin_file.seek(0)
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", LAUNCHER, json.dumps(config)],
                stdin=stdin_file if stdin_file is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(status_write,),
                process_group=0,
                env={},
                cwd=self.root,
            )
            os.close(status_write)
            status_write = -1
            stdout, stderr, killed_for = self._collect(proc, start + timeout + LAUNCH_GRACE_S)
            elapsed = time.monotonic() - start
            raw_status = os.read(status_read, 1 << 16)
        finally:
            os.close(status_read)
            if status_write >= 0:
                os.close(status_write)
            if stdin_file is not None:
                stdin_file.close()
        report = json.loads(raw_status) if raw_status else {}
        out = stdout.decode(errors="replace")
        err = stderr.decode(errors="replace")
        if "setup_error" in report:
            return _command_result("Error", stderr=f"sandbox setup failed: {report['setup_error']}\n{err}")
        wall = report.get("wall_s", elapsed)
        if killed_for == "timeout" or report.get("timed_out") or wall > timeout:
            return _command_result("TimeLimitExceeded", time_s=wall, stdout=out, stderr=err, cpu_s=report.get("cpu_s"))
        if killed_for == "output":
            err += f"\n[sandbox] output exceeded {self.limits.max_output_bytes} bytes: the program was killed\n"
            return _command_result("Finished", time_s=wall, return_code=-signal.SIGKILL, stdout=out, stderr=err)
        if not report:
            return _command_result(
                "Error", stderr=f"sandbox launcher exited with {proc.returncode} without a report\n" f"{err}"
            )
        if report.get("signal") == signal.SIGXCPU:  # RLIMIT_CPU: the CPU-time limit is a time limit
            return _command_result("TimeLimitExceeded", time_s=wall, stdout=out, stderr=err, cpu_s=report["cpu_s"])
        code = -report["signal"] if "signal" in report else report["exit_code"]
        return _command_result("Finished", time_s=wall, return_code=code, stdout=out, stderr=err, cpu_s=report["cpu_s"])

    def _collect(self, proc: subprocess.Popen, deadline: float) -> tuple[bytes, bytes, str | None]:
        """Read stdout/stderr until both close, the deadline passes, or the output cap is hit."""
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
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
                launcher_done = proc.poll() is not None
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
                if total > self.limits.max_output_bytes:
                    killed_for = "output"
                    break
        if killed_for is not None:
            _kill_group(proc.pid)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        cap = self.limits.max_output_bytes
        return b"".join(chunks[out_fd])[:cap], b"".join(chunks[err_fd])[:cap], killed_for

    def _kill_uid(self, uid: int) -> None:
        """Kill whatever of this uid still runs (only possible without a pid namespace)."""
        for _ in range(100):
            pids = processes_of_uid(uid)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.01)
        logger.error("sandbox uid %d still has processes after repeated SIGKILL: %s", uid, processes_of_uid(uid))

    # ---------------------------------------------------------------- start-up probes
    def _probe(
        self, argv: list[str], namespaces: tuple[str, ...], rlimits: dict | None = None, timeout: float = 10.0
    ) -> dict:
        slot = self._slots.get()
        workdir = tempfile.mkdtemp(dir=self.root, prefix="probe-")
        try:
            os.chown(workdir, slot.identity.uid, slot.identity.gid)
            os.chmod(workdir, 0o700)
            return self._execute(slot, argv, workdir, timeout, None, self.limits.memory_limit_mb, namespaces, rlimits)
        finally:
            self._kill_uid(slot.identity.uid)
            shutil.rmtree(workdir, ignore_errors=True)
            self._slots.put(slot)

    def _probe_namespaces(self, requested: tuple[str, ...] | None) -> tuple[str, ...]:
        """The namespaces that work here; ``requested`` ones must all work (no silent downgrade)."""
        true = [shutil.which("true") or "/bin/true"]
        if requested is not None:
            result = self._probe(true, tuple(requested))
            if result["status"] != "Finished" or result["return_code"] != 0:
                raise RuntimeError(f"requested sandbox namespaces {requested} do not work here: {result['stderr']}")
            return tuple(requested)
        working = tuple(
            ns
            for ns in ALL_NAMESPACES
            if (r := self._probe(true, (ns,)))["status"] == "Finished" and r["return_code"] == 0
        )
        if working and (r := self._probe(true, working))["status"] != "Finished":
            raise RuntimeError(f"sandbox namespaces {working} work one by one but not together: {r['stderr']}")
        missing = sorted(set(ALL_NAMESPACES) - set(working))
        if missing:
            logger.warning("embedded sandbox runs without %s namespace(s): the kernel refused them", missing)
        return working

    def _probe_process_cap(self, cap: int = 4, attempts: int = 12) -> bool:
        """Harmless proof that RLIMIT_NPROC binds: with a cap of 4, spawning 12 sleepers must fail."""
        return probe_process_cap(self, cap, attempts)["binds"]


def probe_process_cap(sandbox: Sandbox, cap: int, attempts: int) -> dict:
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
    result = sandbox._probe(argv, sandbox.namespaces, rlimits)
    started = int(result["stdout"].strip() or -1) if result["status"] == "Finished" else -1
    return {
        "binds": 0 <= started < min(cap, attempts),
        "started": started,
        "cap": cap,
        "attempts": attempts,
        "result": result,
    }


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _overall_status(compile_result: dict | None, run_result: dict | None) -> tuple[str, str]:
    """Sandbox-Fusion's ``parse_run_status``: Error -> SandboxError; timeout or non-zero exit -> Failed."""
    results = [r for r in (compile_result, run_result) if r is not None]
    for r in results:
        if r["status"] == "Error":
            return "SandboxError", r["stderr"] or ""
    if any(r["status"] == "TimeLimitExceeded" for r in results):
        return "Failed", ""
    if any(r["return_code"] not in (None, 0) for r in results):
        return "Failed", ""
    return "Success", ""
