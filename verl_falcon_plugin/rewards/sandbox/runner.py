"""Executes Sandbox-Fusion ``/run_code`` requests on this machine, one bounded slot per worker.

What a run gets (each mechanism shown to work by a probe at start-up, see :meth:`Sandbox.isolation`):

* a fresh work directory: a tmpfs of ``disk_mb`` and ``max_inodes`` owned by the slot's dedicated
  unprivileged uid/gid (``uids.py``); the program runs under that uid with ``no_new_privs``;
* per-run budgets in a cgroup: memory (its files on the tmpfs included) and process count, whatever it forks;
* rlimits, hard = soft: CPU seconds, address space, processes (binding, because the uid is not root:
  proven by a probe before the server accepts work), file size, open files, no core;
* a seccomp filter: no new user namespaces, no bpf/io_uring/userfaultfd/perf/keyrings;
* a new session without a controlling terminal; an environment of PATH/HOME/TMPDIR/LANG only;
* a wall-clock limit; stdout/stderr capped at ``max_output_bytes`` (the program is killed when it writes more);
* new pid, mount, network, IPC and UTS namespaces: no network (a downed loopback only), every mount
  read-only except the work directory, and nothing it spawned outlives it.

A host that refuses a mechanism makes the server refuse to start, unless ``allow_unisolated=True``
(``--allow-unisolated``), which logs what is lost. What it is NOT, even with everything in force: a boundary
against kernel exploits (the program shares the host kernel) or against reading world-readable host files.
"""

from __future__ import annotations

import ctypes.util
import importlib.util
import logging
import os
import queue
from dataclasses import asdict
from typing import Any

from verl_falcon_plugin.rewards.sandbox.cgroups import CgroupBudget, sweep_stale_groups
from verl_falcon_plugin.rewards.sandbox.execute import Command, execute
from verl_falcon_plugin.rewards.sandbox.languages import Toolchain, for_code, toolchains
from verl_falcon_plugin.rewards.sandbox.probes import (
    ALL_NAMESPACES,
    LOSSES,
    probe_namespaces,
    probe_process_cap,
    probe_user_namespaces_blocked,
)
from verl_falcon_plugin.rewards.sandbox.reaper import kill_uid
from verl_falcon_plugin.rewards.sandbox.request import RequestError, RunRequest, SandboxLimits, parse_request
from verl_falcon_plugin.rewards.sandbox.uids import DEFAULT_UID_BASE, SlotIdentity, claim_slot_identities
from verl_falcon_plugin.rewards.sandbox.workdir import RunDir, WorkRoot, owner_is_dead
from verl_falcon_plugin.rewards.sandbox.zygote import Zygote

__all__ = ["RequestError", "Sandbox", "SandboxLimits", "probe_process_cap"]

logger = logging.getLogger(__name__)

#: the launcher and the namespace's init are in the run's cgroup too
LAUNCHER_PROCESSES = 2
LAUNCHER_MEMORY_MB = 48


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
        allow_unisolated: bool = False,
    ) -> None:
        if os.geteuid() != 0:
            raise PermissionError(
                "the embedded sandbox must start as root so that it can run code under a dedicated unprivileged "
                "uid (RLIMIT_NPROC would otherwise count, and a fork bomb exhaust, your own processes); "
                "run it as root or use a Sandbox-Fusion deployment"
            )
        self.limits = limits
        self.workers = workers
        self.allow_unisolated = allow_unisolated
        self.toolchains: dict[str, Toolchain] = toolchains(python)
        self._identities = claim_slot_identities(workers, uid_base)
        self._slots: queue.Queue[SlotIdentity] = queue.Queue()
        for identity in self._identities:
            self._slots.put(identity)
        self._root: WorkRoot | None = None
        self._cgroups: CgroupBudget | None = None
        self._zygote: Zygote | None = None
        self.unavailable: dict[str, str] = {}  # mechanism -> why this host refused it
        try:
            self._root = WorkRoot()
            self.root = self._root.path
            sweep_stale_groups(owner_is_dead)
            self._start_mechanisms()
            self.namespaces = probe_namespaces(self, namespaces)
            for ns in sorted(set(ALL_NAMESPACES) - set(self.namespaces)):
                self.unavailable[ns] = "requested without it" if namespaces is not None else "the kernel refused it"
            self.process_cap_binds = probe_process_cap(self, cap=4, attempts=12)["binds"]
            if not self.process_cap_binds:
                raise RuntimeError("RLIMIT_NPROC does not bind the sandbox uid: refusing to run code (fork bombs)")
            if self.seccomp_module_dir and not probe_user_namespaces_blocked(self)["blocked"]:
                raise RuntimeError("the seccomp filter loaded but a program still created a user namespace")
            self._refuse_unless_allowed()
        except BaseException:
            self.close()
            raise

    def _start_mechanisms(self) -> None:
        try:
            self._cgroups = CgroupBudget.create(self._root.token)
        except OSError as err:
            self.unavailable["cgroup"] = str(err)
        self.tmpfs = True
        try:
            RunDir(
                self.root, self._identities[0].uid, self._identities[0].gid, tmpfs=True, disk_mb=1, max_inodes=16
            ).close()
        except OSError as err:
            self.tmpfs = False
            self.unavailable["tmpfs"] = str(err)
        spec = importlib.util.find_spec("pyseccomp")
        self.seccomp_module_dir = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
        self.seccomp_libraries = {name: ctypes.util.find_library(name) for name in ("c", "seccomp")}
        if self.seccomp_module_dir is None:
            self.unavailable["seccomp"] = "pyseccomp is not installed (pip install 'verl-falcon-plugin[sandbox]')"
        elif self.seccomp_libraries["seccomp"] is None:
            self.seccomp_module_dir = None
            self.unavailable["seccomp"] = "libseccomp is not installed (apt-get install libseccomp2)"
        self._zygote = Zygote(self.seccomp_module_dir, self.seccomp_libraries)

    def _refuse_unless_allowed(self) -> None:
        lost = self.lost()
        if not lost:
            return
        described = "\n".join(f"  - {name}: {loss} ({self.unavailable[name]})" for name, loss in lost.items())
        if not self.allow_unisolated:
            raise RuntimeError(
                "this host does not grant every isolation mechanism of the embedded sandbox, so it refuses to "
                f"start. Lost would be:\n{described}\nRun it as root on a host that allows namespaces, cgroups and "
                "tmpfs mounts, or accept the losses explicitly with --allow-unisolated (allow_unisolated=True)."
            )
        logger.warning("embedded sandbox runs UNISOLATED (--allow-unisolated); lost:\n%s", described)

    def lost(self) -> dict[str, str]:
        """Mechanism -> what a run loses without it, for every mechanism not in force."""
        return {name: LOSSES[name] for name in self.unavailable}

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        for identity in self._identities:
            kill_uid(identity.uid)
            identity.release()
        if self._cgroups is not None:
            self._cgroups.close()
            self._cgroups = None
        if self._root is not None:
            self._root.close()

    def isolation(self) -> dict[str, Any]:
        """Every mechanism in force, as probed at start-up (``GET /isolation``)."""
        return {
            "uid_drop": True,
            "no_new_privs": True,
            "new_session_without_controlling_terminal": True,
            "slot_uids": [i.uid for i in self._identities],
            "namespaces": list(self.namespaces),
            "network_isolated": "net" in self.namespaces,
            "filesystem_read_only_outside_workdir": "mount" in self.namespaces,
            "pid_namespace_kills_leftovers": "pid" in self.namespaces,
            "process_cap_binds": self.process_cap_binds,
            "cgroup": None
            if self._cgroups is None
            else {"version": self._cgroups.version, "memory": True, "pids": True},
            "workdir_tmpfs": self.tmpfs,
            "seccomp": None if self.seccomp_module_dir is None else {"user_namespaces": "blocked"},
            "fetch_files": "O_NOFOLLOW relative to the work directory, after every process of the run is dead",
            "unisolated": self.lost(),
            "languages": sorted(self.toolchains),
            "work_root": self.root,
            "limits": asdict(self.limits),
        }

    # ---------------------------------------------------------------- the protocol
    def run_code(self, body: Any) -> dict[str, Any]:
        """One ``/run_code`` request -> its response, both as Sandbox-Fusion's JSON objects (RequestError: 400)."""
        request = parse_request(body, self.limits)
        toolchain = self.toolchains.get(request.language)
        if toolchain is None:
            return _response(
                "SandboxError",
                f"language {request.language!r} is not supported by the embedded sandbox "
                f"(supported: {', '.join(sorted(self.toolchains))})",
            )
        slot = self._slots.get()
        try:
            return self._run_in_slot(slot, for_code(request.language, toolchain, request.code), request)
        finally:
            self._slots.put(slot)

    def _run_in_slot(self, slot: SlotIdentity, toolchain: Toolchain, request: RunRequest) -> dict:
        workdir = self._run_dir(slot, self.limits.disk_mb, self.limits.max_inodes)
        try:
            try:
                for name, data in request.files.items():
                    workdir.write(name, data)
                workdir.write(toolchain.source_name, request.code.encode())
            except OSError as err:
                return _response("SandboxError", f"cannot write the request's files into the work directory: {err}")
            compile_result = run_result = None
            if toolchain.compile_argv is not None:
                memory = max(request.memory_mb, self.limits.compile_memory_limit_mb)
                compile_result = self._step(
                    slot, list(toolchain.compile_argv), workdir, request.compile_timeout, None, memory
                )
            if compile_result is None or (
                compile_result["status"] == "Finished" and compile_result["return_code"] == 0
            ):
                run_result = self._step(
                    slot, list(toolchain.run_argv), workdir, request.run_timeout, request.stdin, request.memory_mb
                )
            # every process of the run is dead now (_step reaps them): nothing can swap a path under the fetch
            fetched, notes = workdir.fetch(request.fetch_files, self.limits.max_fetch_bytes)
            if workdir.is_full():
                notes.append(
                    f"the work directory is full (budget: {self.limits.disk_mb} MiB, {self.limits.max_inodes} files)"
                )
            status, message = _overall_status(compile_result, run_result)
            message = "; ".join(m for m in [message, *notes] if m)
            return _response(status, message, compile_result, run_result, fetched)
        finally:
            workdir.close()

    def _run_dir(self, slot: SlotIdentity, disk_mb: int, max_inodes: int) -> RunDir:
        return RunDir(self.root, slot.uid, slot.gid, tmpfs=self.tmpfs, disk_mb=disk_mb, max_inodes=max_inodes)

    def _step(
        self,
        slot: SlotIdentity,
        argv: list[str],
        workdir: RunDir,
        timeout: float,
        stdin: str | None,
        memory_mb: int,
        namespaces: tuple[str, ...] | None = None,
        rlimits: dict | None = None,
        max_pids: int | None = None,
    ) -> dict:
        """One command of a run; when it returns, no process of it is left."""
        cgroup = None
        try:
            if self._cgroups is not None:
                pids = (max_pids or self.limits.max_processes) + LAUNCHER_PROCESSES
                cgroup = self._cgroups.run_group((memory_mb + LAUNCHER_MEMORY_MB) << 20, pids)
            command = Command(
                argv=argv,
                workdir=workdir.path,
                uid=slot.uid,
                gid=slot.gid,
                timeout_s=timeout,
                rlimits=rlimits or self.limits.rlimits(timeout, memory_mb),
                namespaces=self.namespaces if namespaces is None else namespaces,
                max_output_bytes=self.limits.max_output_bytes,
                stdin=stdin,
                cgroup=cgroup,
                seccomp=self.seccomp_module_dir is not None,
                scratch_dir=self.root,
            )
            return execute(command, self._zygote)
        finally:
            if cgroup is not None:
                cgroup.kill_all()
                cgroup.remove()
            if cgroup is None or "pid" not in (self.namespaces if namespaces is None else namespaces):
                kill_uid(slot.uid)  # no cgroup to empty, or no namespace to take leftovers with it

    def probe(
        self,
        argv: list[str],
        namespaces: tuple[str, ...],
        rlimits: dict | None = None,
        timeout: float = 10.0,
        max_pids: int | None = None,
    ) -> dict:
        """Run a start-up probe in a slot of its own (see ``probes.py``)."""
        slot = self._slots.get()
        try:
            workdir = self._run_dir(slot, 16, 256)
            try:
                return self._step(
                    slot, argv, workdir, timeout, None, self.limits.memory_limit_mb, namespaces, rlimits, max_pids
                )
            finally:
                workdir.close()
        finally:
            self._slots.put(slot)


def _response(status: str, message: str = "", compile_result=None, run_result=None, files=None) -> dict:
    import base64

    return {
        "status": status,
        "message": message,
        "compile_result": compile_result,
        "run_result": run_result,
        "executor_pod_name": None,
        "files": {name: base64.b64encode(data).decode() for name, data in (files or {}).items()},
    }


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
