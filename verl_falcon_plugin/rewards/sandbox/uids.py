"""Unprivileged uids for sandboxed programs: one dedicated uid per concurrent run slot.

A dedicated uid per slot (instead of everyone sharing ``nobody``) makes each run's
``RLIMIT_NPROC`` count only that run's processes, keeps runs from signalling or
reading each other, and lets the server find and kill every leftover process of a
run by its uid. No ``useradd`` is needed: the kernel accepts any uid, and the
work directory is chowned to it. Uids are claimed with ``flock`` on a lock file
per uid, so several servers on one host never share one; the kernel releases the
lock when a server dies.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

#: far above login users (1000+) and systemd's dynamic range (61184-65519),
#: but below 2**31 for tools that treat uids as signed
DEFAULT_UID_BASE = 1_900_000_000
DEFAULT_UID_RANGE = 4096
LOCK_DIR = "/run/falcon-h1r-sandbox-uids" if os.path.isdir("/run") else "/tmp/falcon-h1r-sandbox-uids"


@dataclass
class SlotIdentity:
    uid: int
    gid: int
    lock_fd: int

    def release(self) -> None:
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1


def processes_of_uid(uid: int, *, zombies: bool = False) -> list[int]:
    """Pids whose real uid is ``uid``, read from /proc (zombies only when asked: they cannot run)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # the process exited while we looked
        real_uid = int(status[status.index("\nUid:") + 5 :].split(None, 1)[0])
        zombie = status[status.index("\nState:") + 7 :].lstrip().startswith("Z")
        if real_uid == uid and (zombies or not zombie):
            pids.append(int(entry))
    return pids


def claim_slot_identities(
    count: int, base: int = DEFAULT_UID_BASE, span: int = DEFAULT_UID_RANGE
) -> list[SlotIdentity]:
    """Claim ``count`` uids in ``[base, base + span)`` that no live server holds and no process uses."""
    if count < 1:
        raise ValueError(f"workers must be >= 1, got {count}")
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    claimed: list[SlotIdentity] = []
    for uid in range(base, base + span):
        fd = os.open(os.path.join(LOCK_DIR, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if processes_of_uid(uid, zombies=True):  # someone outside our lock protocol uses it
            os.close(fd)
            continue
        claimed.append(SlotIdentity(uid, uid, fd))
        if len(claimed) == count:
            return claimed
    for identity in claimed:
        identity.release()
    raise RuntimeError(f"could not claim {count} free sandbox uids in [{base}, {base + span}); pass another uid_base")
