"""Per-run budgets and the mechanisms behind them (issue 15, items 4, 5, 7 and 8): a cgroup holds the run's
memory and process count, a tmpfs its disk bytes and inodes, seccomp refuses new user namespaces, Java runs
with assertions on (``test_sandbox_server.py``), stale work roots are swept, and ``GET /isolation`` reports all of it.

Each budget test has a negative control: the same program under the budget finishes, so the failure is the
budget's doing. Everything here allocates at most a few hundred MiB and starts at most a dozen sleepers.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid

import pytest
import requests

from tests.rewards.sandbox_helpers import require_root, sandbox_servers, slot_uids, surviving_processes
from verl_falcon_plugin.rewards.sandbox.languages import system_python
from verl_falcon_plugin.rewards.sandbox.probes import USER_NAMESPACE_PROBE
from verl_falcon_plugin.rewards.sandbox.request import SandboxLimits

pytestmark = pytest.mark.slow

LIMITS = SandboxLimits(memory_limit_mb=256, max_memory_mb=256, disk_mb=32, max_inodes=300)


@pytest.fixture(scope="module")
def server():
    with sandbox_servers(1, workers=1, limits=LIMITS) as running:
        yield running[0]


def run(server, code: str, language: str = "python", **extra) -> dict:
    body = {"code": code, "language": language, "run_timeout": 10, **extra}
    answer = requests.post(f"{server.url}/run_code", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_next_run_unaffected(server) -> None:
    response = run(server, "import os; print(sorted(os.listdir('.')))")
    assert response["status"] == "Success" and response["run_result"]["stdout"] == "['main.py']\n", response
    assert not surviving_processes(slot_uids([server]))


def children_allocating(count: int, mib: int) -> str:
    """``count`` processes, each under the per-process address-space limit, touching ``mib`` MiB each."""
    return (
        "import os, time\n"
        f"for _ in range({count}):\n"
        "    if os.fork() == 0:\n"
        f"        block = bytearray({mib} << 20)\n"
        "        time.sleep(2)\n"
        "        os._exit(0)\n"
        "codes = [os.wait()[1] for _ in range(%d)]\n"
        "print(codes)\n"
        "raise SystemExit(any(codes))\n" % count
    )


def test_the_memory_budget_holds_the_whole_run(server):
    """3 x 120 MiB: each process is under its address-space limit, the run is over its 256 MiB budget."""
    response = run(server, children_allocating(3, 120))
    assert response["status"] == "Failed", response
    assert "exceeded its memory budget" in response["run_result"]["stderr"], response
    assert_next_run_unaffected(server)


def test_the_memory_budget_negative_control(server):
    response = run(server, children_allocating(2, 60))
    assert response["status"] == "Success", response
    assert "memory budget" not in response["run_result"]["stderr"]


@pytest.mark.parametrize("max_pids, expect_all", [(6, False), (64, True)], ids=["budget-6", "control-64"])
def test_the_process_budget_holds_the_whole_run_whatever_the_rlimit(server, max_pids, expect_all):
    """RLIMIT_NPROC lifted: only the cgroup's pids.max bounds the run (its launcher and init come on top)."""
    sandbox = server.sandbox
    python = sandbox.toolchains["python"].run_argv[0]
    script = (
        "import subprocess\nstarted = 0\nfor _ in range(12):\n    try:\n"
        "        subprocess.Popen(['sleep', '30'])\n        started += 1\n    except OSError:\n        break\n"
        "print(started)\n"
    )
    rlimits = sandbox.limits.rlimits(10, 256) | {"NPROC": 4096}
    result = sandbox.probe([python, "-E", "-s", "-B", "-c", script], sandbox.namespaces, rlimits, max_pids=max_pids)
    started = int(result["stdout"])
    if expect_all:
        assert started == 12, result
    else:
        assert started == max_pids - 1, result  # the interpreter is one of the run's processes
        assert "process budget" in result["stderr"], result
    assert not surviving_processes(slot_uids([server]))


def test_the_disk_budget_holds_the_work_directory(server):
    """Five 10 MiB files (each under RLIMIT_FSIZE) into a 32 MiB work directory."""
    code = "for i in range(5):\n    open(f'f{i}', 'wb').write(b'x' * (10 << 20))"
    response = run(server, code)
    assert response["status"] == "Failed" and "No space left" in response["run_result"]["stderr"], response
    assert "the work directory is full" in response["message"]
    assert_next_run_unaffected(server)


def test_the_inode_budget_holds_the_work_directory(server):
    response = run(server, "for i in range(5000):\n    open(f'f{i}', 'w').close()")
    assert response["status"] == "Failed" and "No space left" in response["run_result"]["stderr"], response
    assert "the work directory is full" in response["message"]
    assert_next_run_unaffected(server)


def test_a_fetched_file_over_the_budget_is_named_never_cut(server):
    budget = server.sandbox.limits.max_fetch_bytes
    code = f"open('small', 'w').write('ok')\nopen('big', 'wb').write(b'x' * {budget + 1})"
    response = run(server, code, fetch_files=["small", "big"])
    assert base64.b64decode(response["files"]["small"]) == b"ok" and "big" not in response["files"]
    assert f"'big' not fetched: {budget + 1} bytes, over the" in response["message"], response["message"]


def test_a_program_cannot_create_a_user_namespace(server):
    response = run(server, USER_NAMESPACE_PROBE)
    assert response["run_result"]["stdout"].strip() == "Operation not permitted", response
    shell = run(server, "unshare -Ur true && echo created", "bash")
    assert "created" not in shell["run_result"]["stdout"], shell


def test_user_namespaces_negative_control():
    """The premise: outside the sandbox, the same uid-less program creates one on this host (so the filter is
    what refuses it). Hosts that forbid unprivileged user namespaces altogether cannot show the control."""
    require_root()
    if open("/proc/sys/user/max_user_namespaces").read().strip() == "0":
        pytest.skip("this host forbids user namespaces to everyone: nothing for the filter to add")
    out = subprocess.run(
        [system_python(), "-I", "-c", USER_NAMESPACE_PROBE],
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        timeout=60,
        cwd="/",
    )
    assert out.stdout.strip() == "created", out


def test_the_program_has_no_controlling_terminal(server):
    code = "import os\ntry:\n    os.open('/dev/tty', os.O_RDWR)\n    print('opened')\n"
    code += "except OSError as e:\n    print(e.errno)"
    assert run(server, code)["run_result"]["stdout"].strip() == str(6)  # ENXIO


def test_isolation_reports_every_mechanism_in_force(server):
    report = requests.get(f"{server.url}/isolation", timeout=10).json()
    assert report["namespaces"] == ["pid", "mount", "net", "ipc", "uts"]
    assert report["cgroup"] and report["cgroup"]["memory"] and report["cgroup"]["pids"]
    assert report["workdir_tmpfs"] is True and report["seccomp"] == {"user_namespaces": "blocked"}
    assert report["process_cap_binds"] and report["new_session_without_controlling_terminal"]
    assert report["unisolated"] == {}
    assert report["limits"]["disk_mb"] == 32


def test_stale_work_roots_and_cgroups_are_swept_at_start():
    """A server killed with SIGKILL leaves its root (maybe with a tmpfs still mounted) and its cgroups."""
    require_root()
    from verl_falcon_plugin.rewards.sandbox._launcher import mount
    from verl_falcon_plugin.rewards.sandbox.cgroups import CgroupBudget
    from verl_falcon_plugin.rewards.sandbox.uids import LOCK_DIR
    from verl_falcon_plugin.rewards.sandbox.workdir import ROOT_PREFIX, unmount_below

    token = uuid.uuid4().hex[:16]
    stale = os.path.join("/tmp", ROOT_PREFIX + token)
    os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
    open(os.path.join(LOCK_DIR, f"root-{token}"), "w").close()  # the dead server's lock file, held by nobody
    os.makedirs(os.path.join(stale, "run-x"))
    budget = None
    try:
        mount("tmpfs", os.path.join(stale, "run-x"), "tmpfs", 0, "test tmpfs", "size=1m")
        budget = CgroupBudget.create(token)  # its owner "dies": nobody holds the root's lock
        groups = list(budget.parents.values())
        with sandbox_servers(1, workers=1) as (live,):
            assert not os.path.exists(stale), "the stale root survived the start"
            assert not os.path.exists(os.path.join(LOCK_DIR, f"root-{token}"))
            assert not any(os.path.exists(g) for g in groups), "a stale cgroup survived the start"
            with open("/proc/self/mountinfo") as f:
                assert stale not in f.read()
            # negative control: a live server's root is never swept by another one starting
            with sandbox_servers(1, workers=1):
                assert os.path.isdir(live.sandbox.root)
    finally:
        if os.path.exists(stale):
            unmount_below(stale)
            os.rmdir(os.path.join(stale, "run-x"))
            os.rmdir(stale)
        if os.path.exists(os.path.join(LOCK_DIR, f"root-{token}")):
            os.unlink(os.path.join(LOCK_DIR, f"root-{token}"))
        if budget is not None:
            budget.close()


def test_without_namespaces_the_server_refuses_to_start_unless_allowed():
    require_root()
    from verl_falcon_plugin.rewards.sandbox import Sandbox

    with pytest.raises(RuntimeError, match="--allow-unisolated") as refused:
        Sandbox(1, namespaces=())
    assert "net: programs can open network connections" in str(refused.value)
    sandbox = Sandbox(1, namespaces=(), allow_unisolated=True)
    try:
        assert set(sandbox.isolation()["unisolated"]) == {"pid", "mount", "net", "ipc", "uts"}
    finally:
        sandbox.close()


def test_unisolated_fetch_files_never_follow_a_swapped_symlink():
    """Issue 15 item 3: without a pid namespace a background process swaps out.txt between a file and a
    symlink to a root-only secret while the server fetches. The fetch runs after every process of the run
    is dead (cgroup) and opens with O_NOFOLLOW relative to the work directory: the secret never comes back."""
    require_root()
    secret_dir = f"/root/falcon-h1r-test-{uuid.uuid4().hex}"
    os.makedirs(secret_dir, mode=0o700)
    secret = os.path.join(secret_dir, "secret")
    with open(secret, "w") as f:
        f.write("TOP-SECRET-CONTENT")
    code = (
        "import os, subprocess, sys\n"
        "swapper = '''import os\\nwhile True:\\n"
        "    open('f.tmp', 'w').write('plain')\\n    os.replace('f.tmp', 'out.txt')\\n"
        f"    try:\\n        os.symlink({secret!r}, 'l.tmp')\\n        os.replace('l.tmp', 'out.txt')\\n"
        "    except OSError:\\n        pass\\n'''\n"
        "subprocess.Popen([sys.executable, '-c', swapper], start_new_session=True)\n"
        "import time\nwhile not os.path.lexists('out.txt'):\n    time.sleep(0.005)\ntime.sleep(0.02)\n"
    )
    swapped = 0
    try:
        with sandbox_servers(1, workers=1, namespaces=(), allow_unisolated=True) as (server,):
            for _ in range(30):
                response = run(server, code, fetch_files=["out.txt"])
                fetched = base64.b64decode(response["files"].get("out.txt", ""))
                assert fetched in (b"", b"plain"), response
                assert fetched or "'out.txt' not fetched: it is a symlink" in response["message"], response
                swapped += not fetched
            assert not surviving_processes(slot_uids([server]))
        assert swapped, "the swapper never left a symlink behind: the attack was not exercised"
    finally:
        os.unlink(secret)
        os.rmdir(secret_dir)
