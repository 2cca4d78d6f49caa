"""Work directories: the server's root (swept when its server died), and one size-limited tmpfs per run.

Files go in and come out through the work directory's descriptor, one path component at a time with
``O_NOFOLLOW``: a symlink, FIFO or device the program planted is reported, never followed or opened. The
server fetches files only after every process of the run is dead, so nothing can swap a path under it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import tempfile
import time
import uuid

from verl_falcon_plugin.rewards.sandbox._launcher import MS_NODEV, MS_NOSUID, _unescape_mountinfo, mount, unmount
from verl_falcon_plugin.rewards.sandbox.uids import LOCK_DIR

logger = logging.getLogger(__name__)

ROOT_PREFIX = "falcon-h1r-sandbox-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _lock_path(token: str) -> str:
    return os.path.join(LOCK_DIR, f"root-{token}")


def owner_is_dead(token: str) -> bool:
    """True when no live server holds ``token``'s lock (the kernel drops a flock when its holder dies)."""
    try:
        fd = os.open(_lock_path(token), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def sweep_stale_roots(base: str | None = None) -> list[str]:
    """Remove the work roots (and their leftover tmpfs mounts) of servers that died without cleaning up."""
    base = base or tempfile.gettempdir()
    removed = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not name.startswith(ROOT_PREFIX) or not os.path.isdir(path) or os.path.islink(path):
            continue
        token = name[len(ROOT_PREFIX) :]
        # a root without a lock file was made by an older version, which took no lock: swept once it is old
        lockless_and_recent = not os.path.exists(_lock_path(token)) and time.time() - os.stat(path).st_mtime < 3600
        if not lockless_and_recent and owner_is_dead(token):
            unmount_below(path)
            shutil.rmtree(path, ignore_errors=True)
            if os.path.exists(_lock_path(token)):
                os.unlink(_lock_path(token))
            removed.append(path)
    if removed:
        logger.warning("swept %d stale sandbox work root(s): %s", len(removed), removed)
    return removed


def unmount_below(path: str) -> None:
    """Lazily unmount every mount at or under ``path`` (deepest first) in the server's mount namespace."""
    prefix = os.path.realpath(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape_mountinfo(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        unmount(point)


class WorkRoot:
    """``<tmp>/falcon-h1r-sandbox-<token>``, 0711: slots may reach their own 0700 directory, not list others."""

    def __init__(self) -> None:
        sweep_stale_roots()
        self.token = uuid.uuid4().hex[:16]
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        # the lock exists (and is held) before the directory does, so no sweeper can take a root being born
        self._lock_fd = os.open(_lock_path(self.token), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = os.path.join(tempfile.gettempdir(), ROOT_PREFIX + self.token)
        os.mkdir(self.path, 0o711)
        os.chmod(self.path, 0o711)  # whatever the umask

    def close(self) -> None:
        if self._lock_fd < 0:
            return
        unmount_below(self.path)
        shutil.rmtree(self.path, ignore_errors=True)
        os.unlink(_lock_path(self.token))
        os.close(self._lock_fd)
        self._lock_fd = -1


class RunDir:
    """One run's work directory, owned by its slot's uid: a tmpfs of ``disk_mb`` and ``max_inodes`` when
    ``tmpfs``, else a plain directory (no disk budget: reported by ``GET /isolation``)."""

    def __init__(self, root: str, uid: int, gid: int, *, tmpfs: bool, disk_mb: int, max_inodes: int) -> None:
        self.uid, self.gid = uid, gid
        self.path = tempfile.mkdtemp(dir=root, prefix="run-")
        self.mounted = False
        self.fd = -1
        try:
            if tmpfs:
                options = f"size={disk_mb}m,nr_inodes={max_inodes},mode=0700,uid={uid},gid={gid}"
                mount("tmpfs", self.path, "tmpfs", MS_NOSUID | MS_NODEV, f"tmpfs work directory {self.path}", options)
                self.mounted = True
            else:
                os.chown(self.path, uid, gid)
                os.chmod(self.path, 0o700)
            self.fd = os.open(self.path, _DIR_FLAGS)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.mounted:
            unmount(self.path)  # detaches at once: 120,000 files go with the tmpfs, no rmtree to wait for
            self.mounted = False
        shutil.rmtree(self.path, ignore_errors=True)

    def is_full(self) -> bool:
        """No block or no inode left: the program ran into the disk budget."""
        st = os.fstatvfs(self.fd)
        return self.mounted and (st.f_bavail == 0 or st.f_favail == 0)

    def write(self, name: str, data: bytes) -> None:
        """Create ``name`` (a validated relative path) with ``data``, owned by the slot's uid."""
        *parents, leaf = name.split("/")
        directory = self._walk(parents, create=True)
        try:
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=directory
            )
            try:
                os.fchown(fd, self.uid, self.gid)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        finally:
            if directory != self.fd:
                os.close(directory)

    def fetch(self, names: tuple[str, ...], max_bytes: int) -> tuple[dict[str, bytes], list[str]]:
        """Regular files among ``names``, whole, up to ``max_bytes`` in all; and a note for each one not fetched
        (missing, not a regular file, or over what is left of the budget: never silently truncated)."""
        fetched, notes = {}, []
        for name in names:
            *parents, leaf = name.split("/")
            try:
                directory = self._walk(parents, create=False)
            except OSError as err:
                notes.append(f"fetch_files: {name!r} not fetched: {_why(err)}")
                continue
            try:
                fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
            except OSError as err:
                notes.append(f"fetch_files: {name!r} not fetched: {_why(err)}")
                continue
            finally:
                if directory != self.fd:
                    os.close(directory)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    notes.append(f"fetch_files: {name!r} not fetched: not a regular file")
                    continue
                size, left = os.fstat(fd).st_size, max_bytes - sum(map(len, fetched.values()))
                if size > left:
                    notes.append(
                        f"fetch_files: {name!r} not fetched: {size} bytes, over the {left} bytes left of "
                        f"the response's {max_bytes}-byte budget for fetched files"
                    )
                    continue
                with os.fdopen(os.dup(fd), "rb") as f:
                    fetched[name] = f.read(size)
            finally:
                os.close(fd)
        return fetched, notes

    def _walk(self, parents: list[str], *, create: bool) -> int:
        directory = self.fd
        for part in parents:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=directory)
                    os.chown(part, self.uid, self.gid, dir_fd=directory, follow_symlinks=False)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=directory)
            finally:
                if directory != self.fd:
                    os.close(directory)
            directory = child
        return directory


def _why(err: OSError) -> str:
    import errno

    if err.errno == errno.ELOOP:
        return "it is a symlink (never followed)"
    if err.errno == errno.ENOTDIR:
        return "a parent is not a directory (or is a symlink)"
    if err.errno == errno.ENOENT:
        return "it does not exist"
    return os.strerror(err.errno or 0)
