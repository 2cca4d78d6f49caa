"""The LLM judge against a local stub OpenAI-compatible server: request, strict parsing, round-robin, errors."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verl_falcon_plugin.rewards.judge import (
    JudgeClient,
    JudgeUnreachableError,
    JudgeVerdictError,
    judge_reward,
    parse_verdict,
)
from verl_falcon_plugin.rewards.result import RewardStatus


class StubServer:
    """An OpenAI-ish chat server: ``behaviour`` is 'reply' (send ``reply``), '500', '400' or 'sleep'."""

    def __init__(self, reply="CORRECT", behaviour="reply"):
        self.reply, self.behaviour, self.requests = reply, behaviour, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "stub-judge", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append((self.path, body))
                if stub.behaviour == "500":
                    return self._send(500, {"error": "boom"})
                if stub.behaviour == "400":
                    return self._send(400, {"error": {"message": "model 'x' not found"}})
                if stub.behaviour == "sleep":
                    time.sleep(1.0)
                self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": stub.reply}}]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stubs():
    servers = []

    def make(**kwargs):
        servers.append(StubServer(**kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _dead_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


RESPONSE = "<think>hmm</think>The answer is \\boxed{B}"


def test_request_carries_question_answer_reference_and_the_choice_constraint(stubs):
    stub = stubs()
    result = judge_reward("Which gas?", RESPONSE, "B (argon)", endpoints=[stub.url], backoff_s=0)
    assert result.status is RewardStatus.CORRECT and result.score == 1.0
    ((path, body),) = stub.requests
    assert path == "/v1/chat/completions"
    assert body["model"] == "stub-judge"  # discovered from /v1/models
    assert body["structured_outputs"] == {"choice": ["CORRECT", "INCORRECT"]}
    assert "guided_choice" not in body  # ignored by vLLM 0.32: would silently unconstrain the reply
    assert body["temperature"] == 0.0
    user = body["messages"][-1]["content"]
    assert "Which gas?" in user and "B (argon)" in user and "\\boxed" not in user and "hmm" not in user


def test_incorrect_verdict(stubs):
    stub = stubs(reply="INCORRECT")
    result = judge_reward("Q", RESPONSE, "C", endpoints=[stub.url], model="m", backoff_s=0)
    assert result.status is RewardStatus.WRONG and result.score == 0.0


@pytest.mark.parametrize("reply", ["CORRECT.", "correct", "I think CORRECT", "", None, "CORRECT INCORRECT"])
def test_strict_parsing(reply):
    with pytest.raises(JudgeVerdictError):
        parse_verdict(reply, {"CORRECT": 1.0, "INCORRECT": 0.0})
    assert parse_verdict("  CORRECT\n", {"CORRECT": 1.0, "INCORRECT": 0.0}) == 1.0


def test_unparseable_reply_is_an_error_after_retries(stubs):
    stub = stubs(reply="Probably correct")
    result = judge_reward("Q", RESPONSE, "B", endpoints=[stub.url], model="m", retries=1, backoff_s=0)
    assert result.status is RewardStatus.ERROR and result.score == 0.0
    assert "Probably correct" in result.metadata["detail"] and len(stub.requests) == 2


def test_round_robin_spreads_requests(stubs):
    a, b = stubs(), stubs()
    client = JudgeClient([a.url, b.url], model="m", backoff_s=0)
    threads = [threading.Thread(target=client.score, args=("Q", "B", "B")) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(a.requests) == len(b.requests) == 5


def test_down_and_failing_endpoints_are_skipped(stubs):
    good, broken = stubs(), stubs(behaviour="500")
    client = JudgeClient([_dead_url(), broken.url, good.url], model="m", retries=2, backoff_s=0)
    assert client.score("Q", "B", "B")[0] == 1.0
    assert len(broken.requests) == 1 and len(good.requests) == 1


def test_unreachable_is_a_clear_error():
    dead = _dead_url()
    client = JudgeClient([dead], model="m", retries=1, backoff_s=0, timeout_s=2)
    with pytest.raises(JudgeUnreachableError, match="no verdict after 2 attempts") as err:
        client.score("Q", "B", "B")
    assert dead in str(err.value) and "ConnectionError" in str(err.value)
    result = judge_reward("Q", RESPONSE, "B", endpoints=[dead], model="m", retries=0, backoff_s=0)
    assert result.status is RewardStatus.ERROR and dead in result.metadata["detail"]


def test_timeout_is_retried_then_reported(stubs):
    slow = stubs(behaviour="sleep")
    client = JudgeClient([slow.url], model="m", retries=1, backoff_s=0, timeout_s=0.3)
    with pytest.raises(JudgeUnreachableError, match="Timeout"):
        client.score("Q", "B", "B")


def test_client_error_is_not_retried(stubs):
    stub = stubs(behaviour="400")
    result = judge_reward("Q", RESPONSE, "B", endpoints=[stub.url], model="x", retries=3, backoff_s=0)
    assert result.status is RewardStatus.ERROR and "400" in result.metadata["detail"]
    assert "not found" in result.metadata["detail"] and len(stub.requests) == 1


def test_bad_configuration():
    with pytest.raises(ValueError, match="at least one endpoint"):
        JudgeClient([])
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        JudgeClient(["http://x"], verdicts={"YES": 2.0})
    with pytest.raises(ValueError, match="ground_truth"):
        judge_reward("Q", RESPONSE, "", endpoints=["http://x"])
