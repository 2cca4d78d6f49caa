"""Rollout scoring and the OpenAI-server path without vLLM: canned completions, the real reward router."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from verl_falcon_plugin.data.jsonl_io import MalformedRowError
from verl_falcon_plugin.data.rl_rollouts import (
    PAPER_SYSTEM_PROMPT,
    Completion,
    OpenAIServer,
    SamplingConfig,
    final_answer,
    run_rollouts,
)

CANNED = [
    ("<think>2+2</think>\nso \\boxed{4}", "stop"),
    ("<think>hmm</think>\n\\boxed{5}", "stop"),
    ("<think>going on and on", "length"),
]


class CannedGenerator:
    def __init__(self):
        self.calls = []

    def generate(self, problems, sampling):
        self.calls.append((len(problems), sampling))
        return [[Completion(t, r == "length", 3) for t, r in CANNED] for _ in problems]


def write_problems(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rollouts_are_scored_with_the_project_rewards(tmp_path):
    problems = tmp_path / "p.jsonl"
    write_problems(problems, [{"id": 0, "prompt": "2+2?", "ground_truth": "4", "data_source": "math"}] * 3)
    out = tmp_path / "r.jsonl"
    generator = CannedGenerator()
    summary = run_rollouts(str(problems), str(out), generator, SamplingConfig(n=3), batch_size=2, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [c[0] for c in generator.calls] == [2, 1]
    rewards = [r["reward"] for r in rows[0]["rollouts"]]
    assert rewards == [1.0, 0.0, 0.0]  # math-verify through the router: 4 is right, 5 is wrong, no answer
    assert [r["answer"] for r in rows[0]["rollouts"]] == ["4", "5", None]
    assert [r["truncated"] for r in rows[0]["rollouts"]] == [False, False, True]
    assert summary == {**summary, "problems": 3, "rollouts": 9, "correct": 3, "truncated": 3}


def test_problem_rows_are_validated_with_file_and_line(tmp_path):
    problems = tmp_path / "p.jsonl"
    write_problems(
        problems,
        [
            {"id": 0, "prompt": "x", "ground_truth": "1", "data_source": "math"},
            {"id": 1, "prompt": "x", "data_source": "math"},
        ],
    )
    with pytest.raises(MalformedRowError, match=r"p.jsonl:2: missing field 'ground_truth'"):
        run_rollouts(str(problems), str(tmp_path / "r.jsonl"), CannedGenerator(), SamplingConfig(n=3), progress=False)
    assert not (tmp_path / "r.jsonl").exists()


def test_final_answer_takes_the_last_balanced_box():
    assert final_answer("\\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert final_answer("<think>x</think> 42") == "42"


def test_openai_server_gets_the_paper_sampling_settings():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            choices = [{"message": {"content": t}, "finish_reason": r} for t, r in CANNED]
            payload = json.dumps({"choices": choices}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from verl_falcon_plugin.data.rl_rollouts import Problem

        client = OpenAIServer(f"http://127.0.0.1:{server.server_port}/v1", "falcon", concurrency=2)
        problem = Problem(
            1, {}, [{"role": "system", "content": PAPER_SYSTEM_PROMPT}, {"role": "user", "content": "q"}], "math", "4"
        )
        results = client.generate([problem, problem], SamplingConfig())
    finally:
        server.shutdown()
    assert [len(r) for r in results] == [3, 3] and results[0][2].truncated
    path, body = seen[0]
    assert path == "/v1/chat/completions"
    assert (body["n"], body["temperature"], body["top_p"], body["max_tokens"]) == (8, 0.6, 0.95, 32768)
    assert body["messages"][0]["content"].startswith("You are Falcon")
