"""The process cap must bind BEFORE any fork-bomb test is allowed to run.

Everything on these machines runs as root, and RLIMIT_NPROC does not bind root: a fork bomb
against a root sandbox takes the machine down. This harmless check runs a program that tries
to start more sleeping children than its cap allows; the children only sleep and die with the
run, so the check is safe even when the cap does not bind.
"""

from __future__ import annotations

import pytest

from tests.rewards.sandbox_helpers import require_root
from verl_falcon_plugin.rewards.sandbox.runner import Sandbox, probe_process_cap
from verl_falcon_plugin.rewards.sandbox.uids import processes_of_uid


@pytest.fixture(scope="module")
def sandbox():
    require_root()
    sb = Sandbox(1)
    yield sb
    sb.close()


def test_programs_run_under_an_unprivileged_uid(sandbox):
    result = sandbox.run_code(
        {"code": "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())", "language": "python"}
    )
    uid, euid, gid, groups = result["run_result"]["stdout"].split(" ", 3)
    assert int(uid) == int(euid) == sandbox.isolation()["slot_uids"][0] != 0
    assert int(gid) != 0 and "0" not in groups.strip("[]\n").split(", ")


@pytest.mark.parametrize("cap", [3, 6])
def test_process_cap_binds_for_the_sandbox_uid(sandbox, cap):
    outcome = probe_process_cap(sandbox, cap=cap, attempts=3 * cap)
    # the interpreter itself is one of the cap's processes, so at most cap - 1 children start
    assert outcome["started"] == cap - 1, outcome
    assert outcome["binds"]
    assert not processes_of_uid(sandbox.isolation()["slot_uids"][0]), "the sleepers outlived the run"


def test_the_same_probe_detects_an_unbound_cap(sandbox):
    """Negative control: the probe is able to fail. Without the cap, all children start."""
    outcome = probe_process_cap(sandbox, cap=4096, attempts=8)
    assert outcome["started"] == 8 and not outcome["binds"], outcome


def test_the_premise_rlimit_nproc_does_not_bind_root():
    """Why the uid drop exists: the same harmless probe, run as root with RLIMIT_NPROC=4, starts
    every child. (The sleepers are killed by the probe itself.)"""
    import resource
    import subprocess
    import sys

    require_root()
    script = (
        "import subprocess\nkids = []\nfor _ in range(12):\n    try:\n"
        "        kids.append(subprocess.Popen(['sleep', '30']))\n    except OSError:\n        break\n"
        "print(len(kids))\nfor k in kids:\n    k.kill()\n    k.wait()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (4, 4)),
    )
    assert out.stdout.strip() == "12", out
