"""`rl-data rollouts` against unreliable servers: retries with backoff, append-only output, resume."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from verl_falcon_plugin.data.jsonl_io import MalformedRowError
from verl_falcon_plugin.data.rl_rollouts import INDEX_KEY, OpenAIServer, RetryPolicy, SamplingConfig, run_rollouts

ANSWERS = ["<think>add</think>\n\\boxed{4}", "<think>guess</think>\n\\boxed{5}"]
FAST_RETRY = RetryPolicy(max_attempts=4, backoff_s=0.01)


class Server:
    """An OpenAI-compatible server whose answer to each request is scripted (status or 'ok')."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body["messages"][-1]["content"])
                action = server.script.pop(0) if server.script else "ok"
                if action == "drop":  # the connection dies without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action == "ok":
                    payload = {"choices": [{"message": {"content": t}, "finish_reason": "stop"} for t in ANSWERS]}
                    self._send(200, payload, {})
                else:
                    self._send(action, {"error": "busy"}, {"Retry-After": "0"} if action == 429 else {})

            def _send(self, status, payload, headers):
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in {"Content-Length": str(len(data)), **headers}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def client(self, retry=FAST_RETRY):
        return OpenAIServer(f"http://127.0.0.1:{self.httpd.server_port}/v1", "m", concurrency=1, retry=retry)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def write_problems(path, count):
    rows = [{"id": i, "prompt": f"q{i}: 2+2?", "ground_truth": "4", "data_source": "math"} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_transient_errors_are_retried_and_nothing_is_lost(tmp_path):
    problems, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    write_problems(problems, 3)
    server = Server([503, 429, "drop", "ok", 502, "ok"])
    try:
        summary = run_rollouts(str(problems), str(out), server.client(), SamplingConfig(n=2), batch_size=1,
                               progress=False)  # fmt: skip
    finally:
        server.stop()
    rows = read_rows(out)
    assert [r[INDEX_KEY] for r in rows] == [1, 2, 3]
    assert [[x["reward"] for x in r["rollouts"]] for r in rows] == [[1.0, 0.0]] * 3  # the real math reward
    assert len(server.requests) == 3 + 4  # three answered, four failures retried
    assert summary["resumed"] == 0 and summary["rollouts"] == 6


def test_a_server_that_dies_mid_run_fails_clearly_and_the_rerun_resumes(tmp_path):
    problems, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    write_problems(problems, 4)
    dying = Server(["ok", "ok"] + [503] * 10)
    try:
        with pytest.raises(RuntimeError, match=r"failed 4 times for the problem on line 3 .*HTTP 503.*rerun"):
            run_rollouts(str(problems), str(out), dying.client(), SamplingConfig(n=2), batch_size=1, progress=False)
    finally:
        dying.stop()
    assert [r[INDEX_KEY] for r in read_rows(out)] == [1, 2]  # the finished problems were kept
    with out.open("a") as handle:  # and a crash during a write leaves a partial line: it is cut off
        handle.write('{"id": 2, "rollo')
    healthy = Server([])
    try:
        summary = run_rollouts(str(problems), str(out), healthy.client(), SamplingConfig(n=2), batch_size=1,
                               progress=False)  # fmt: skip
    finally:
        healthy.stop()
    assert healthy.requests == ["q2: 2+2?", "q3: 2+2?"]  # only what was missing
    assert [r[INDEX_KEY] for r in read_rows(out)] == [1, 2, 3, 4]
    assert summary["resumed"] == 2 and summary["rollouts"] == 8


def test_a_resume_with_other_sampling_settings_is_refused(tmp_path):
    problems, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    write_problems(problems, 1)
    server = Server([])
    try:
        run_rollouts(str(problems), str(out), server.client(), SamplingConfig(n=2), progress=False)
        with pytest.raises(ValueError, match=r"other settings \(sampling: .*'temperature': 0.6.*0.9"):
            run_rollouts(str(problems), str(out), server.client(), SamplingConfig(n=2, temperature=0.9),
                         progress=False)  # fmt: skip
    finally:
        server.stop()


def test_a_row_the_router_cannot_score_is_named_before_any_generation(tmp_path):
    problems, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    rows = [{"prompt": "2+2?", "ground_truth": "4", "data_source": "math"},
            {"prompt": "write a haiku", "ground_truth": "x", "data_source": "ifbench"}]  # fmt: skip
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = Server([])
    try:
        with pytest.raises(MalformedRowError, match=r"p.jsonl:2: cannot route the reward: .*'ifbench'"):
            run_rollouts(str(problems), str(out), server.client(), SamplingConfig(n=2), progress=False)
    finally:
        server.stop()
    assert server.requests == [] and not out.exists()


def test_client_errors_are_not_retried(tmp_path):
    problems, out = tmp_path / "p.jsonl", tmp_path / "r.jsonl"
    write_problems(problems, 1)
    server = Server([400])
    try:
        with pytest.raises(RuntimeError, match=r"answered 400 for the problem on line 1 \(not retried\)"):
            run_rollouts(str(problems), str(out), server.client(), SamplingConfig(n=2), progress=False)
    finally:
        server.stop()
    assert len(server.requests) == 1
