"""Runs one sandboxed command; executed as a script (``python -I -S _launcher.py CONFIG_JSON``).

It is started as root by the sandbox server and must import nothing but the
standard library (``-I -S``: no site-packages, no environment). Process tree::

    launcher (root, the server's namespaces, its own process group)
      └─ init   (root; pid 1 of a new pid namespace, in new mount/net/ipc/uts namespaces)
           └─ user program (unprivileged uid/gid, rlimits, no_new_privs, minimal env)

When ``init`` exits, the kernel kills every process left in the pid namespace,
so nothing the program spawned (double-forked daemons included) survives it.
``init`` dies with the launcher (PR_SET_PDEATHSIG), so the server's SIGKILL of
the launcher's process group on a wall-clock timeout tears the namespace down too.

The outcome goes to the server as one JSON object on ``status_fd`` (closed
before the user program starts, so it cannot forge it): either
``{"setup_error": ...}`` or ``{"exit_code"|"signal", "wall_s", "cpu_s", "timed_out"}``. The
wall-clock limit (``timeout_s``) is enforced here, by ``init``, so a time-out is reported at once;
the server's own deadline is only a backstop for a launcher that hangs.
"""

import ctypes
import json
import os
import resource
import select
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
}
MOUNT_OPTION_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(source, target, fstype, flags, what):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), None), what)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mount_points() -> list:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            flags = 0
            for option in fields[5].split(","):
                flags |= MOUNT_OPTION_FLAGS.get(option, 0)
            points.append((_unescape_mountinfo(fields[4]), flags))
    return points


def _make_filesystem_read_only(writable: list, host_mount_ns: int) -> None:
    """Every mount read-only except ``writable`` (bind-mounted read-write), in OUR mount namespace only."""
    if os.stat("/proc/self/ns/mnt").st_ino == host_mount_ns:
        # never remount anything in the namespace the rest of the machine uses
        raise SetupError("refusing to remount: still in the server's mount namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, "make / private")
    for point, flags in _mount_points():
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, f"remount {point} read-only")
        except SetupError:
            if os.path.exists(point):
                raise
            # a mount shadowed by a later one at a parent path: unreachable anyway
    for path in writable:
        _mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, f"remount {path} read-write")


def _mount_fresh_proc() -> None:
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mount /proc for the new pid namespace")


def _set_rlimits(rlimits: dict) -> None:
    for name, value in rlimits.items():
        limit = getattr(resource, f"RLIMIT_{name}")
        resource.setrlimit(limit, (int(value), int(value)))  # hard = soft: the program cannot raise them


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0 or os.getgid() == 0:
        raise SetupError("privileges were not dropped")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def _exec_user_program(config: dict, status_fd: int) -> None:
    """In the forked child: limits, credentials, then exec. Never returns."""
    try:
        os.close(status_fd)
        os.closerange(3, 65536)
        os.chdir(config["cwd"])
        _set_rlimits(config["rlimits"])
        _drop_privileges(config["uid"], config["gid"])
        os.execve(config["argv"][0], config["argv"], config["env"])
    except BaseException as err:  # noqa: BLE001 - any failure here must end this child with a message
        os.write(2, f"sandbox launcher: cannot start {config['argv'][0]}: {err}\n".encode())
    os._exit(127)


def _init(config: dict, status_fd: int, host_mount_ns: int) -> None:
    """pid 1 of the new namespace: finish the isolation, start the program, reap, report."""
    status = {}
    try:
        namespaces = config["namespaces"]
        if "mount" in namespaces:
            _make_filesystem_read_only(config["writable"], host_mount_ns)
            if "pid" in namespaces:
                _mount_fresh_proc()
        start = time.monotonic()
        child = os.fork()
        if child == 0:
            _exec_user_program(config, status_fd)
        timed_out = []

        def on_wall_clock_limit(signum, frame):
            timed_out.append(True)
            try:
                os.kill(child, signal.SIGKILL)  # and when init exits, the rest of the namespace dies
            except ProcessLookupError:
                pass  # it exited just as the limit expired

        signal.signal(signal.SIGALRM, on_wall_clock_limit)
        signal.setitimer(signal.ITIMER_REAL, config["timeout_s"])
        # as pid 1 we inherit every orphan: reap them until the program itself exits
        while True:
            pid, wait_status, rusage = os.wait4(-1, 0)
            if pid == child:
                break
        signal.setitimer(signal.ITIMER_REAL, 0)
        status["wall_s"] = time.monotonic() - start
        status["timed_out"] = bool(timed_out)
        status["cpu_s"] = rusage.ru_utime + rusage.ru_stime
        if os.WIFSIGNALED(wait_status):
            status["signal"] = os.WTERMSIG(wait_status)
        else:
            status["exit_code"] = os.WEXITSTATUS(wait_status)
    except SetupError as err:
        status = {"setup_error": str(err)}
    except BaseException as err:  # noqa: BLE001 - reported to the server as a sandbox error
        status = {"setup_error": f"{type(err).__name__}: {err}"}
    os.write(status_fd, json.dumps(status).encode())
    os._exit(0)


def main() -> None:
    config = json.loads(sys.argv[1])
    status_fd = config["status_fd"]
    host_mount_ns = os.stat("/proc/self/ns/mnt").st_ino
    flags = 0
    for name in config["namespaces"]:
        flags |= NAMESPACE_FLAGS[name]
    try:
        if flags:
            _check(_libc.unshare(flags), f"unshare({', '.join(config['namespaces'])})")
    except SetupError as err:
        os.write(status_fd, json.dumps({"setup_error": str(err)}).encode())
        sys.exit(1)
    # open while the launcher lives: lets init detect that it died before PDEATHSIG was armed
    # (getppid() cannot tell: it is 0 inside a new pid namespace)
    alive_read, alive_write = os.pipe()
    init = os.fork()  # with CLONE_NEWPID, the first child is pid 1 of the new namespace
    if init == 0:
        os.close(alive_write)
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if select.select([alive_read], [], [], 0)[0]:  # EOF: the launcher is gone
            os._exit(1)
        os.close(alive_read)
        _init(config, status_fd, host_mount_ns)
    os.close(alive_read)
    os.close(status_fd)
    _, wait_status = os.waitpid(init, 0)
    sys.exit(os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else 1)


if __name__ == "__main__":
    main()
