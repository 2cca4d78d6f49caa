"""Killing what a run left by its uid: the fallback where no cgroup holds the run (and the server's last sweep)."""

from __future__ import annotations

import logging
import os
import signal
import time

from verl_falcon_plugin.rewards.sandbox.uids import processes_of_uid

logger = logging.getLogger(__name__)


def kill_uid(uid: int, attempts: int = 100) -> bool:
    """Kill whatever of this uid still runs; True once none is left.

    Scanning /proc costs milliseconds on a busy host, so runs with a cgroup are reaped through it instead;
    this is the fallback for hosts without cgroups, and the server's last sweep at close.
    """
    for _ in range(attempts):
        pids = processes_of_uid(uid)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    logger.error("sandbox uid %d still has processes after repeated SIGKILL: %s", uid, processes_of_uid(uid))
    return False
