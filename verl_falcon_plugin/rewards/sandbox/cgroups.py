"""Per-execution cgroups: one budget for everything a run starts (memory, including its files on the tmpfs
work directory, and process count), however many processes it forks.

Two layouts are handled: cgroup v1 with writable ``memory`` and ``pids`` hierarchies (what this machine class
has, as root), and cgroup v2 where the server's own group may delegate ``memory`` and ``pids`` to children.
The server's groups are created *under its own* group, so the host's accounting of the server still holds
everything its programs use. A launcher joins its execution's group(s) before it forks anything
(``cgroup.procs`` paths in its config), so nothing the program starts can leave them: moving a process
between groups needs write access to root-owned files.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

CGROUP_ROOT = "/sys/fs/cgroup"
GROUP_PREFIX = "falcon-h1r-sandbox-"


@dataclass(frozen=True)
class _Layout:
    version: int
    limit_file: dict[str, str]  # controller -> file taking its limit
    parents: dict[str, str]  # controller -> the server's group directory in that hierarchy


class RunCgroup:
    """The group(s) of one execution: limits set, joined by the launcher, read, emptied and removed."""

    def __init__(self, layout: _Layout, name: str, memory_bytes: int, max_pids: int) -> None:
        self._layout = layout
        self.dirs: list[str] = []
        limits = {"memory": memory_bytes, "pids": max_pids}
        try:
            for controller, parent in layout.parents.items():
                path = os.path.join(parent, name)
                os.mkdir(path)
                self.dirs.append(path)
                if layout.version == 2:
                    _write(os.path.join(path, "memory.max"), str(memory_bytes))
                    _write(os.path.join(path, "memory.swap.max"), "0", optional=True)
                    _write(os.path.join(path, "pids.max"), str(max_pids))
                else:
                    _write(os.path.join(path, layout.limit_file[controller]), str(limits[controller]))
                    if controller == "memory":  # no swap beyond the budget, where swap accounting exists
                        _write(os.path.join(path, "memory.memsw.limit_in_bytes"), str(memory_bytes), optional=True)
        except BaseException:
            self.remove()
            raise

    @property
    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.procs_files:
            try:
                with open(path) as f:
                    found.update(int(line) for line in f if line.strip())
            except FileNotFoundError:
                continue
        return found

    def events(self) -> dict[str, int]:
        """``oom_kills``: processes the memory budget killed; ``forks_refused``: forks the pids budget refused."""
        if self._layout.version == 2:
            base = self.dirs[0]
            return {
                "oom_kills": _keyed(os.path.join(base, "memory.events"), "oom_kill"),
                "forks_refused": _keyed(os.path.join(base, "pids.events"), "max"),
            }
        memory, pids = (self._layout.parents[c] for c in ("memory", "pids"))
        name = os.path.basename(self.dirs[0])
        return {
            "oom_kills": _keyed(os.path.join(memory, name, "memory.oom_control"), "oom_kill"),
            "forks_refused": _keyed(os.path.join(pids, name, "pids.events"), "max"),
        }

    def kill_all(self, attempts: int = 500) -> bool:
        """SIGKILL every process in the group until it is empty (a fork racing the kill is bounded by pids.max)."""
        for _ in range(attempts):
            pids = self.pids()
            if not pids:
                return True
            kill_file = os.path.join(self.dirs[0], "cgroup.kill")
            if self._layout.version == 2 and os.path.exists(kill_file):
                _write(kill_file, "1")
            else:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.002)
        return not self.pids()

    def remove(self) -> None:
        for path in reversed(self.dirs):
            _rmdir_when_empty(path)
        self.dirs = []


class CgroupBudget:
    """The server's parent group(s); creates one :class:`RunCgroup` per execution."""

    def __init__(self, layout: _Layout) -> None:
        self._layout = layout
        self._counter = 0

    @property
    def version(self) -> int:
        return self._layout.version

    @property
    def parents(self) -> dict[str, str]:
        return dict(self._layout.parents)

    @classmethod
    def create(cls, token: str) -> "CgroupBudget":
        """Parent groups named ``falcon-h1r-sandbox-<token>`` under the server's own; OSError with the reason."""
        own = _own_groups()
        v1 = {c: os.path.join(CGROUP_ROOT, c) for c in ("memory", "pids")}
        if all(os.path.isfile(os.path.join(p, "cgroup.procs")) for p in v1.values()) and all(c in own for c in v1):
            parents = {c: os.path.join(v1[c], own[c].lstrip("/"), GROUP_PREFIX + token) for c in v1}
            layout = _Layout(1, {"memory": "memory.limit_in_bytes", "pids": "pids.max"}, parents)
        else:
            layout = _v2_layout(own, token)
        made = []
        try:
            for parent in layout.parents.values():
                os.mkdir(parent, 0o755)
                made.append(parent)
            if layout.version == 2:
                _write(os.path.join(layout.parents["unified"], "cgroup.subtree_control"), "+memory +pids")
        except BaseException:
            for parent in reversed(made):
                _rmdir_when_empty(parent)
            raise
        return cls(layout)

    def run_group(self, memory_bytes: int, max_pids: int) -> RunCgroup:
        self._counter += 1
        return RunCgroup(self._layout, f"run-{os.getpid()}-{self._counter}", memory_bytes, max_pids)

    def close(self) -> None:
        for parent in self._layout.parents.values():
            _remove_tree(parent)


def sweep_stale_groups(is_stale: Callable[[str], bool]) -> list[str]:
    """Remove ``falcon-h1r-sandbox-<token>`` groups beside ours whose owner ``is_stale(token)`` says is dead."""
    own = _own_groups()
    removed = []
    candidates = [os.path.join(CGROUP_ROOT, c, own[c].lstrip("/")) for c in ("memory", "pids") if c in own]
    if "" in own:
        candidates.append(os.path.join(_v2_mount(), own[""].lstrip("/")))
    for base in candidates:
        try:
            names = [n for n in os.listdir(base) if n.startswith(GROUP_PREFIX)]
        except OSError:
            continue
        for name in names:
            if is_stale(name[len(GROUP_PREFIX) :]):
                _remove_tree(os.path.join(base, name))
                removed.append(os.path.join(base, name))
    return removed


# ---------------------------------------------------------------- helpers
def _own_groups() -> dict[str, str]:
    """controller -> this process's group path (``""``: the v2 unified hierarchy)."""
    groups = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    return groups


def _v2_mount() -> str:
    unified = os.path.join(CGROUP_ROOT, "unified")
    return unified if os.path.isfile(os.path.join(unified, "cgroup.controllers")) else CGROUP_ROOT


def _v2_layout(own: dict[str, str], token: str) -> _Layout:
    mount = _v2_mount()
    if "" not in own or not os.path.isfile(os.path.join(mount, "cgroup.controllers")):
        raise OSError(errno.ENOENT, "no writable cgroup v1 memory+pids hierarchies and no cgroup v2 mount")
    base = os.path.join(mount, own[""].lstrip("/"))
    # our groups are children of the server's own: it must hand memory and pids down to them (a group with
    # processes cannot enable that itself, the "no internal processes" rule; the root group is exempt)
    delegated_file = "cgroup.controllers" if base.rstrip("/") == mount else "cgroup.subtree_control"
    with open(os.path.join(base, delegated_file)) as f:
        available = set(f.read().split())
    if not {"memory", "pids"} <= available:
        raise OSError(
            errno.ENOTSUP,
            f"cgroup v2 at {base} does not delegate memory+pids ({delegated_file}: {sorted(available) or 'none'}) "
            "and the v1 memory/pids hierarchies are not mounted: run the server in a group that delegates them "
            "(e.g. systemd-run -p Delegate=yes)",
        )
    return _Layout(2, {}, {"unified": os.path.join(base, GROUP_PREFIX + token)})


def _write(path: str, value: str, optional: bool = False) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except FileNotFoundError:
        if not optional:
            raise


def _keyed(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except FileNotFoundError:
        pass
    return 0


def _rmdir_when_empty(path: str, attempts: int = 200) -> None:
    """rmdir a group; EBUSY while its last killed processes finish exiting, so retry briefly."""
    for _ in range(attempts):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
        time.sleep(0.005)
    raise OSError(errno.EBUSY, f"cgroup {path} still busy after {attempts} attempts")


def _remove_tree(path: str) -> None:
    """Kill what still runs in ``path`` and its children, then remove them bottom-up."""
    if not os.path.isdir(path):
        return
    for child in [e.path for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]:
        _remove_tree(child)
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            for line in f:
                try:
                    os.kill(int(line), signal.SIGKILL)
                except ProcessLookupError:
                    pass
    except FileNotFoundError:
        return
    _rmdir_when_empty(path)
