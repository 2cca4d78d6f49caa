"""Hostile *clients* against the embedded sandbox's HTTP layer (issue 15, items 2 and 6).

Every field is validated against Sandbox-Fusion's own request model (the ``sandbox_fusion`` client's
``RunCodeRequest``) plus the finiteness and bounds that model does not check; malformed HTTP gets a 4xx
answer, never a dropped connection or a hung thread; and 1,000 hostile requests leave the server's
descriptors, threads and memory where they were.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import socket
import threading

import psutil
import pytest
import requests
from sandbox_fusion import RunCodeRequest

from tests.rewards.sandbox_helpers import sandbox_servers

BASE = {"code": "print(1)", "language": "python"}

# (override of a valid body, the field the 400 must name)
HOSTILE = [
    ({"run_timeout": float("nan")}, "run_timeout"),
    ({"run_timeout": float("inf")}, "run_timeout"),
    ({"compile_timeout": float("-inf")}, "compile_timeout"),
    ({"compile_timeout": -1}, "compile_timeout"),
    ({"run_timeout": 0}, "run_timeout"),
    ({"run_timeout": "abc"}, "run_timeout"),
    ({"run_timeout": [1]}, "run_timeout"),
    ({"memory_limit_MB": "big"}, "memory_limit_MB"),
    ({"memory_limit_MB": 1.5}, "memory_limit_MB"),
    ({"memory_limit_MB": True}, "memory_limit_MB"),
    ({"memory_limit_MB": float("nan")}, "memory_limit_MB"),
    ({"code": None}, "code"),
    ({"code": {"a": 1}}, "code"),
    ({"language": "klingon"}, "language"),
    ({"language": None}, "language"),
    ({"stdin": ["x"]}, "stdin"),
    ({"files": "abc"}, "files"),
    ({"files": {"a.txt": "not base64!"}}, "files['a.txt']"),
    ({"files": {"a\0b": "eA=="}}, "files"),
    ({"files": {"": "eA=="}}, "files"),
    ({"files": {"/etc/cron.d/x": "eA=="}}, "files"),
    ({"fetch_files": "out.txt"}, "fetch_files"),
    ({"fetch_files": ["a\0b"]}, "fetch_files[0]"),
    ({"fetch_files": [None]}, "fetch_files"),
    ({"fetch_files": ["x"] * 5000}, "fetch_files"),
]


@pytest.fixture(scope="module")
def server():
    with sandbox_servers(1, workers=1) as running:
        yield running[0]


def post(url: str, body: dict, session=requests) -> requests.Response:
    # json.dumps writes NaN/Infinity literals, as a hostile client would
    return session.post(
        f"{url}/run_code", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=60
    )


@pytest.mark.parametrize("override, field", HOSTILE, ids=[f"{i}-{f}" for i, (_, f) in enumerate(HOSTILE)])
def test_a_hostile_field_gets_a_400_naming_it(server, override, field):
    answer = post(server.url, BASE | override)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"], answer.json()


def test_the_official_model_alone_lets_non_finite_numbers_through():
    """Why our own checks exist: Sandbox-Fusion's model accepts NaN and -inf timeouts."""
    model = RunCodeRequest.parse_obj(BASE | {"run_timeout": float("nan"), "compile_timeout": float("-inf")})
    assert math.isnan(model.run_timeout) and model.compile_timeout == float("-inf")


def test_values_the_official_model_accepts_are_accepted(server):
    """The reference decides what is valid: it coerces a numeric string, and so do we."""
    answer = post(server.url, BASE | {"run_timeout": "5", "files": {"a.txt": None}})
    assert answer.status_code == 200 and answer.json()["status"] == "Success", answer.text


def test_huge_values_are_clamped_to_the_servers_maxima(server):
    code = "import resource as r\nprint(r.getrlimit(r.RLIMIT_AS)[0] >> 20, r.getrlimit(r.RLIMIT_CPU)[0])"
    answer = post(server.url, {"code": code, "language": "python", "memory_limit_MB": 10**7, "run_timeout": 1e9})
    limits = server.sandbox.limits
    address_space_mb, cpu_s = map(int, answer.json()["run_result"]["stdout"].split())
    assert address_space_mb == limits.max_memory_mb
    assert cpu_s == math.ceil(limits.max_timeout_s) + 1


def _raw(server, payload: bytes, timeout: float = 15.0) -> bytes:
    """Send ``payload`` on a fresh connection (loopback only) and read until the server closes or answers."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(payload)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received:
                    break
        except TimeoutError:
            pass
    return received


@pytest.mark.parametrize(
    "head, body, status",
    [
        (b"Content-Length: abc\r\n", b"", b"400"),
        (b"Content-Length: -1\r\n", b"", b"400"),
        (b"Content-Length: 1000000000000\r\n", b"", b"413"),
        (b"Content-Length: 200001\r\n", b"[" * 100_000 + b"]" * 100_001, b"400"),  # 100k-deep JSON
        (b"Content-Length: 5\r\n", b"{nope", b"400"),
        (b"Content-Length: 4\r\n", b"\xff\xfe\x00\x01", b"400"),
    ],
    ids=["length-abc", "length-negative", "length-huge", "deep-json", "not-json", "not-utf8"],
)
def test_malformed_http_gets_an_answer(server, head, body, status):
    request = b"POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head + b"\r\n" + body
    answer = _raw(server, request)
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert requests.get(f"{server.url}/v1/ping", timeout=10).json() == "pong"


def test_1000_hostile_requests_leave_descriptors_threads_and_memory_alone(server):
    me = psutil.Process()

    def burst(count: int) -> None:
        with requests.Session() as session:
            for i in range(count):
                override, _ = HOSTILE[i % len(HOSTILE)]
                assert post(server.url, BASE | override, session).status_code == 400

    burst(100)  # warm-up: lazy imports, allocator pools
    fds, threads, rss = me.num_fds(), threading.active_count(), me.memory_info().rss
    burst(1000)
    assert me.num_fds() <= fds + 2, "descriptors leaked"  # +2: a keep-alive socket the server has not yet closed
    assert threading.active_count() <= threads + 2, "threads leaked"
    assert me.memory_info().rss - rss < 32 << 20, "RSS grew by more than 32 MiB"
    assert post(server.url, BASE).json()["status"] == "Success"


def test_a_full_queue_answers_429_and_a_slow_body_408():
    with sandbox_servers(1, workers=1, queue_size=1, body_timeout_s=1.0) as (server,):
        slow = BASE | {"code": "import time; time.sleep(3)"}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = sorted(pool.map(lambda _: post(server.url, slow).status_code, range(4)))
        assert codes == [200, 200, 429, 429], codes
        # a body that never finishes arriving: answered 408 after body_timeout_s, the slot never taken
        answer = _raw(server, b'POST /run_code HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"co', timeout=20)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_chunked_body_over_the_cap_is_refused_without_running(server):
    """No Content-Length to check up front: the cap is counted while the body streams in."""
    from verl_falcon_plugin.rewards.sandbox.server import MAX_BODY_BYTES

    chunk = b" " * (1 << 20)
    served = server.requests_served
    answer = requests.post(
        f"{server.url}/run_code", data=(chunk for _ in range(MAX_BODY_BYTES // len(chunk) + 2)), timeout=60
    )
    assert answer.status_code == 413, answer.text[:200]
    assert server.requests_served == served


def test_bodies_held_at_once_are_bounded(server, monkeypatch):
    """256 queued 64 MiB bodies would exhaust the server: past MAX_BUFFERED_BYTES in all, a body gets 503."""
    from verl_falcon_plugin.rewards.sandbox import server as server_module

    monkeypatch.setattr(server_module, "MAX_BUFFERED_BYTES", 1000)
    answer = post(server.url, BASE | {"stdin": "x" * 2000})
    assert answer.status_code == 503 and "request bodies" in answer.json()["detail"], answer.text
    monkeypatch.undo()
    assert post(server.url, BASE | {"stdin": "x" * 2000}).status_code == 200  # and the count went back to zero
