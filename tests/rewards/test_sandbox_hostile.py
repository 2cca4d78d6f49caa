"""Hostile programs against the embedded sandbox, through the official client.

Each must come back as a failure (never Success), leave the server answering the next request,
and leave no process of the sandbox uids alive. The fork bomb runs only after the harmless
process-cap probe has shown, on the same server, that the cap binds.
"""

from __future__ import annotations

import os
import uuid

import pytest
import requests
import sandbox_fusion
from sandbox_fusion import RunCodeRequest

from tests.rewards.sandbox_helpers import sandbox_servers, slot_uids, surviving_processes
from verl_falcon_plugin.rewards.sandbox.runner import probe_process_cap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with sandbox_servers(1, workers=2) as running:
        yield running[0]


def run(server, code: str, language: str = "python", run_timeout: float = 2.0):
    return sandbox_fusion.run_code(
        RunCodeRequest(code=code, language=language, run_timeout=run_timeout),
        endpoint=server.url,
        max_attempts=1,
        client_timeout=60,
    )


def assert_contained(server, response) -> None:
    """A failure, a live server that answers the next request, and no survivor."""
    assert response.status == "Failed", response
    assert requests.get(f"{server.url}/v1/ping", timeout=10).json() == "pong"
    assert run(server, "print('next')").run_result.stdout == "next\n"
    assert not surviving_processes(slot_uids([server]))


@pytest.mark.parametrize(
    "language, code",
    [("python", "while True:\n    pass"), ("cpp", "int main(){for(;;);}"), ("bash", "while :; do :; done")],
)
def test_an_infinite_loop_times_out(server, language, code):
    response = run(server, code, language, run_timeout=1.0)
    assert response.run_result.status == "TimeLimitExceeded"
    assert_contained(server, response)


def test_a_4gb_allocation_fails(server):
    response = run(server, "x = bytearray(4 << 30)\nx[-1] = 1\nprint('allocated')")
    assert "MemoryError" in response.run_result.stderr
    assert_contained(server, response)


def test_a_4gb_allocation_in_cpp_fails(server):
    code = (
        "#include <cstring>\nint main(){ char* p = new char[4ull << 30]; std::memset(p, 1, 4ull << 30); return p[7]; }"
    )
    response = run(server, code, "cpp")
    assert response.run_result.return_code != 0
    assert_contained(server, response)


def test_100mb_of_output_is_cut_and_the_program_killed(server):
    response = run(server, "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(chunk)")
    cap = server.sandbox.limits.max_output_bytes
    assert len(response.run_result.stdout) <= cap
    assert "output exceeded" in response.run_result.stderr
    assert_contained(server, response)


@pytest.mark.parametrize("directory", ["/tmp", "/dev/shm", "/var/tmp", os.getcwd(), "/etc", "/root"])
def test_writing_outside_the_work_directory_fails(server, directory):
    # the server refuses to start without its mount namespace (unless --allow-unisolated): never skipped
    assert server.sandbox.isolation()["filesystem_read_only_outside_workdir"]
    target = os.path.join(directory, f"falcon-h1r-escape-{uuid.uuid4().hex}")
    response = run(server, f"open({target!r}, 'w').write('escaped')\nprint('wrote')")
    assert not os.path.exists(target), f"the sandboxed program wrote {target}"
    assert_contained(server, response)


@pytest.mark.parametrize("address", ["127.0.0.1:{port}", "1.1.1.1:53"])
def test_opening_a_network_connection_fails(server, address):
    assert server.sandbox.isolation()["network_isolated"]  # or the server would have refused to start
    host, port = address.format(port=server.port).split(":")
    code = f"import socket\nsocket.create_connection(({host!r}, {port}), timeout=1).close()\nprint('connected')"
    response = run(server, code)
    assert "connected" not in response.run_result.stdout
    assert_contained(server, response)


def test_a_double_forked_daemon_does_not_survive_the_run(server):
    response = run(server, "(setsid sleep 300 &)\n(nohup sleep 300 >/dev/null 2>&1 &)\necho started", "bash")
    assert response.status == "Success" and response.run_result.stdout == "started\n"
    assert not surviving_processes(slot_uids([server]))


@pytest.mark.parametrize(
    "language, code",
    [
        ("python", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"),
        ("bash", "bomb() { bomb & bomb; }; bomb"),  # the foreground recursion never returns
    ],
)
def test_a_fork_bomb_is_contained(server, language, code):
    cap = probe_process_cap(server.sandbox, cap=4, attempts=12)
    if not cap["binds"]:  # never send a fork bomb to a sandbox whose process cap does not bind
        pytest.fail(f"the process cap does not bind; refusing to run the fork bomb: {cap}")
    response = run(server, code, language, run_timeout=2.0)
    assert response.run_result.status == "TimeLimitExceeded" or response.run_result.return_code != 0
    assert_contained(server, response)


def test_the_classic_backgrounded_bash_bomb_is_killed_with_the_run(server):
    """``:(){ :|:& };:`` backgrounds the bomb: the script ends at once or hangs in bash's fork retries
    (a time-out), depending on timing. Either way the bomb must die with the run."""
    assert probe_process_cap(server.sandbox, cap=4, attempts=12)["binds"]
    response = run(server, ":(){ :|:& };:", "bash")
    assert response.run_result.status in ("Finished", "TimeLimitExceeded")
    assert requests.get(f"{server.url}/v1/ping", timeout=10).json() == "pong"
    assert not surviving_processes(slot_uids([server]))
