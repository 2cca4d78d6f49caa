"""``falcon-h1r sandbox serve`` as users start it: a separate process, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys

import pytest
import requests
import sandbox_fusion
from sandbox_fusion import RunCodeRequest

from tests.rewards.sandbox_helpers import require_root, surviving_processes


@pytest.mark.slow
def test_serve_answers_the_official_client_and_cleans_up_on_sigterm():
    require_root()
    proc = subprocess.Popen(
        [sys.executable, "-m", "verl_falcon_plugin.cli", "sandbox", "serve", "--port", "0", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://[\d.]+:\d+)", line)
        assert match, line + proc.stdout.read()
        url = match.group(1)
        isolation = requests.get(f"{url}/isolation", timeout=10).json()
        response = sandbox_fusion.run_code(
            RunCodeRequest(code="print(6 * 7)", language="python"), endpoint=url, max_attempts=1
        )
        assert response.run_result.stdout == "42\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not surviving_processes(set(isolation["slot_uids"]))
    assert os.path.isabs(isolation["work_root"]) and not os.path.exists(isolation["work_root"])


def test_importing_the_code_reward_pulls_neither_torch_nor_verl():
    code = (
        "import sys\nfrom verl_falcon_plugin.rewards.code import code_reward\n"
        "from verl_falcon_plugin.rewards.sandbox import SandboxServer\n"
        "bad = [m for m in ('torch', 'verl', 'transformers') if m in sys.modules]\nprint(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


INJECTION = """\
import fcntl, os, termios
results = []
for path in ("/dev/tty", {tty!r}):
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        for ch in {line!r}:
            fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
        results.append("injected via " + path)
    except OSError as err:
        results.append(path + " errno " + str(err.errno))
for fd in (0, 1, 2):
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"x")
        results.append("injected via fd " + str(fd))
    except OSError as err:
        results.append("fd " + str(fd) + " errno " + str(err.errno))
print(results)
"""


def _read_terminal(master: int, seconds: float) -> bytes:
    """Everything the terminal shows within ``seconds``."""
    import time

    out, deadline = b"", time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and select.select([master], [], [], left)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side closed
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.slow
def test_a_program_cannot_type_into_the_terminal_the_server_runs_on():
    """Issue 15, item 1: the server runs on a pty (its controlling terminal, as from an operator's shell); a
    program tries TIOCSTI through /dev/tty, the pty's own path and its standard descriptors. Nothing reaches
    the terminal. Negative control: the same injection from outside the sandbox (root) does show up."""
    import pty
    import uuid

    require_root()
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty
        os.execv(
            sys.executable,
            [sys.executable, "-m", "verl_falcon_plugin.cli", "sandbox", "serve", "--port", "0", "--workers", "1"],
        )
    try:
        banner = b""
        while b"isolation:" not in banner:
            assert select.select([master], [], [], 60)[0], banner
            banner += os.read(master, 65536)
        url = re.search(rb"listening on (http://[\d.]+:\d+)", banner).group(1).decode()
        tty = os.readlink(f"/proc/{pid}/fd/0")
        assert tty.startswith("/dev/pts/")
        marker = f"touch /tmp/injected-{uuid.uuid4().hex}"
        code = INJECTION.format(tty=tty, line=marker + "\n")
        response = requests.post(f"{url}/run_code", json={"code": code, "language": "python"}, timeout=60).json()
        results = response["run_result"]["stdout"]
        assert "injected" not in results, response
        assert "/dev/tty errno 6" in results  # ENXIO: no controlling terminal
        assert marker.encode() not in _read_terminal(master, 1.0)
        # negative control: the detector sees an injection that does happen (root may TIOCSTI any terminal)
        if open("/proc/sys/dev/tty/legacy_tiocsti").read().strip() == "1":
            import fcntl
            import termios

            control = f"control-{uuid.uuid4().hex}"
            fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
            try:
                for ch in control:
                    fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
            finally:
                os.close(fd)
            assert control.encode() in _read_terminal(master, 2.0)
    finally:
        os.kill(pid, signal.SIGTERM)
        _read_terminal(master, 5.0)  # drain, so the server's last prints never block on a full terminal
        _, status = os.waitpid(pid, 0)
        os.close(master)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


@pytest.mark.slow
def test_a_server_killed_with_sigkill_leaves_nothing_once_the_next_one_starts():
    require_root()
    import json

    from tests.rewards.sandbox_helpers import sandbox_servers

    proc = subprocess.Popen(
        [sys.executable, "-m", "verl_falcon_plugin.cli", "sandbox", "serve", "--port", "0", "--workers", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        while not line.startswith("isolation: "):
            line = proc.stdout.readline()
            assert line, "the server exited before reporting its isolation"
        work_root = json.loads(line[len("isolation: ") :])["work_root"]
    finally:
        proc.kill()  # SIGKILL: no clean-up of its own
        proc.wait()
        proc.stdout.close()
    assert os.path.isdir(work_root)  # what the next server has to sweep
    with sandbox_servers(1, workers=1):
        assert not os.path.exists(work_root)
