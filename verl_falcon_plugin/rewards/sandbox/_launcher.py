"""Runs sandboxed commands: a pre-forked launcher ("zygote", ``python -I -S _launcher.py FD SETTINGS``) that
forks one launcher per command (see :func:`serve`).

It is started as root by the sandbox server and imports nothing but the standard library
(``-I -S``: no site-packages, no environment) and, when asked, ``pyseccomp`` from the server's
own site-packages. Process tree::

    launcher (root, in the run's cgroups, a new session without a controlling terminal)
      └─ init   (root; pid 1 of a new pid namespace, in new mount/net/ipc/uts namespaces)
           └─ user program (unprivileged uid/gid, rlimits, no_new_privs, seccomp filter, minimal env)

Each launcher calls ``setsid`` before anything else, so nothing in the run
has a controlling terminal: ``open("/dev/tty")`` fails with ENXIO, and TIOCSTI on a terminal
that is not one's controlling terminal needs CAP_SYS_ADMIN, which the program never has.

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
import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

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
MNT_DETACH = 2

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

#: refused inside a run (EPERM, or ENOSYS where callers fall back): kernel attack surface a program for
#: a judge never needs, the set Docker's default seccomp profile also closes to unprivileged containers
DENIED_SYSCALLS = ("bpf", "userfaultfd", "perf_event_open", "keyctl", "add_key", "request_key")
UNAVAILABLE_SYSCALLS = ("io_uring_setup", "io_uring_enter", "io_uring_register")

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)} (errno {err})")


def mount(source, target, fstype, flags, what, data=None):
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), what)


def unmount(target):
    """Detach ``target`` now (MNT_DETACH): its files go once nothing uses them."""
    _check(_libc.umount2(target.encode(), MNT_DETACH), f"unmount {target}")


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


def _make_filesystem_read_only(writable: list, work_root: str, host_mount_ns: int) -> None:
    """Every mount read-only except ``writable`` (bind-mounted read-write), in OUR mount namespace only.

    Other runs' tmpfs work directories (under ``work_root``) are unmounted here first: the program has no
    business there, and the server may be tearing them down concurrently (a remount would race it).
    """
    if os.stat("/proc/self/ns/mnt").st_ino == host_mount_ns:
        # never remount anything in the namespace the rest of the machine uses
        raise SetupError("refusing to remount: still in the server's mount namespace")
    mount(None, "/", None, MS_REC | MS_PRIVATE, "make / private")
    points = _mount_points()
    for point, _ in sorted(points, key=lambda p: len(p[0]), reverse=True):
        if point.startswith(work_root + "/") and point not in writable:
            try:
                unmount(point)
            except SetupError:
                pass  # already gone
    for point, flags in _mount_points():
        try:
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags, f"remount {point} read-only")
        except SetupError:
            # a mount shadowed by a later one at a parent path is unreachable anyway; one another server's
            # run detached meanwhile is gone: only a mount that is still here must be read-only
            if os.path.exists(point) and point in {p for p, _ in _mount_points()}:
                raise
    for path in writable:
        mount(path, path, None, MS_BIND | MS_REC, f"bind {path}")
        mount(None, path, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, f"remount {path} read-write")


def _mount_fresh_proc() -> None:
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mount /proc for the new pid namespace")


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


def _import_pyseccomp(module_dir: str, libraries: dict):
    """The server's pyseccomp (libseccomp through ctypes). Its import looks its libraries up with
    ``ctypes.util.find_library``, which spawns ``ldconfig -p`` twice (100+ ms a run): the server resolved
    them once, at start-up, and passes the paths in ``libraries``."""
    import ctypes.util

    sys.path.insert(0, module_dir)
    find_library = ctypes.util.find_library
    ctypes.util.find_library = lambda name: libraries.get(name) or find_library(name)
    try:
        import pyseccomp
    finally:
        ctypes.util.find_library = find_library
        sys.path.remove(module_dir)  # nothing else is imported from there
    return pyseccomp


def _seccomp_filter(module_dir: str, libraries: dict):
    """No new user namespaces (clone/unshare with CLONE_NEWUSER; clone3, whose flags a filter cannot read,
    answers ENOSYS so libc falls back to clone), plus DENIED_SYSCALLS. Built by init, loaded by the program."""
    seccomp = _import_pyseccomp(module_dir, libraries)

    rules = seccomp.SyscallFilter(seccomp.ALLOW)  # other architectures' syscalls: killed (libseccomp's default)
    eperm, enosys = seccomp.ERRNO(errno.EPERM), seccomp.ERRNO(errno.ENOSYS)
    for call in ("unshare", "clone"):
        rules.add_rule(eperm, call, seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
    rules.add_rule(enosys, "clone3")
    for call in DENIED_SYSCALLS:
        rules.add_rule(eperm, call)
    for call in UNAVAILABLE_SYSCALLS:
        rules.add_rule(enosys, call)
    return rules


def _exec_user_program(config: dict, status_fd: int, seccomp_filter) -> None:
    """In the forked child: limits, credentials, syscall filter, then exec. Never returns."""
    try:
        os.close(status_fd)
        os.closerange(3, 65536)
        os.chdir(config["cwd"])
        _set_rlimits(config["rlimits"])
        _drop_privileges(config["uid"], config["gid"])
        if seccomp_filter is not None:
            seccomp_filter.load()  # after no_new_privs, so it needs no privilege and binds every exec after it
        os.execve(config["argv"][0], config["argv"], config["env"])
    except BaseException as err:  # noqa: BLE001 - any failure here must end this child with a message
        os.write(2, f"sandbox launcher: cannot start {config['argv'][0]}: {err}\n".encode())
    os._exit(127)


def _init(config: dict, status_fd: int, host_mount_ns: int, seccomp_filter, phases: dict) -> None:
    """pid 1 of the new namespace: finish the isolation, start the program, reap, report."""
    status = {}
    phases["init"] = time.monotonic()
    try:
        namespaces = config["namespaces"]
        if "mount" in namespaces:
            _make_filesystem_read_only(config["writable"], config["work_root"], host_mount_ns)
            if "pid" in namespaces:
                _mount_fresh_proc()
        start = phases["mounted"] = time.monotonic()
        child = os.fork()
        if child == 0:
            _exec_user_program(config, status_fd, seccomp_filter)
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
        phases["exited"] = time.monotonic()
        status["wall_s"] = phases["exited"] - start
        status["phases"] = phases  # CLOCK_MONOTONIC instants, for the server's per-run breakdown
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


def launch(config: dict, status_fd: int, seccomp_filter) -> None:
    """One run's launcher, in a child of the zygote (already in its own session). Never returns."""
    phases = {"requested": config["requested_at"], "launcher": time.monotonic()}
    host_mount_ns = os.stat("/proc/self/ns/mnt").st_ino
    flags = 0
    for name in config["namespaces"]:
        flags |= NAMESPACE_FLAGS[name]
    try:
        # before anything forks: the run's budget then holds every process it will ever have
        for procs in config.get("cgroup_procs", []):
            try:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
            except OSError as err:
                raise SetupError(f"join cgroup {procs}: {err}") from None
        if flags:
            _check(_libc.unshare(flags), f"unshare({', '.join(config['namespaces'])})")
        phases["unshared"] = time.monotonic()
    except SetupError as err:
        os.write(status_fd, json.dumps({"setup_error": str(err)}).encode())
        os._exit(1)
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
        _init(config, status_fd, host_mount_ns, seccomp_filter if config.get("seccomp") else None, phases)
    os.close(alive_read)
    os.close(status_fd)
    _, wait_status = os.waitpid(init, 0)
    os._exit(os.WEXITSTATUS(wait_status) if os.WIFEXITED(wait_status) else 1)


def serve(control: socket.socket, seccomp_filter) -> None:
    """The pre-forked launcher ("zygote"): the interpreter starts and imports once, then every run is a fork.

    Each message is a run's config (JSON) with four descriptors (stdin, stdout, stderr, status); the answer
    is a pidfd of the forked launcher, through which the server watches and kills it. EOF on the control
    socket (the server closed it or died) ends the zygote.
    """
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # launchers are reaped by the kernel; their pidfds still report
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 20, 4)
        if not message:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # inherited SIG_IGN would survive exec
                os.setsid()  # a new session: no controlling terminal for anything in the run
                for target, fd in enumerate(fds[:3]):
                    os.dup2(fd, target)
                    os.close(fd)
                launch(json.loads(message), fds[3], seccomp_filter)
            finally:
                os._exit(1)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(control, [b"%d" % pid], [pidfd])
        finally:
            os.close(pidfd)


def main() -> None:
    """``python -I -S _launcher.py CONTROL_FD SETTINGS_JSON``: run the zygote on an inherited socket."""
    settings = json.loads(sys.argv[2])
    seccomp_dir = settings.get("seccomp_module_dir")
    seccomp_filter = _seccomp_filter(seccomp_dir, settings["seccomp_libraries"]) if seccomp_dir else None
    serve(socket.socket(fileno=int(sys.argv[1])), seccomp_filter)


if __name__ == "__main__":
    main()
