"""recipes/eval/run_eval.sh scores every benchmark it lists: two rows each (one right, one wrong) through the
script itself, a scripted OpenAI server, a scripted judge and the embedded sandbox; the verifiers are the real
reward router (math-verify, Sandbox-Fusion protocol, the judge client)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

RECIPE = Path(__file__).parents[2] / "recipes" / "eval"
BIN = Path(sys.executable).parent

CODE = "```python\nprint(int(input()) + 1)\n```"
#: per reward domain: (response the server gives, ground truth of the right row, of the wrong row)
CASES = {
    "math": ("\\boxed{12}", "12", "13"),
    "science": ("The answer is \\boxed{C}", "C", "A"),
    "code": (CODE, json.dumps({"inputs": ["1\n"], "outputs": ["2\n"]}),
             json.dumps({"inputs": ["1\n"], "outputs": ["3\n"]})),
}  # fmt: skip


def benchmarks() -> list[dict[str, str]]:
    lines = (RECIPE / "benchmarks.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def serve(handler_fn) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self._send({"data": [{"id": "judge"}]})

        def do_POST(self):  # noqa: N802
            self._send(handler_fn(json.loads(self.rfile.read(int(self.headers["Content-Length"])))))

        def _send(self, payload):
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def policy(body):
    """The 'model': answers what the prompt asks it to (after RESPOND:), in the paper's format."""
    wanted = body["messages"][-1]["content"].split("RESPOND:", 1)[1]
    assert body["messages"][0]["content"].startswith("You are Falcon")  # the paper's system prompt
    assert (body["temperature"], body["top_p"]) == (0.6, 0.95)  # the paper's evaluation sampling
    text = f"<think>Let me work it out.</think>\n{wanted}"
    return {"choices": [{"message": {"content": text}, "finish_reason": "stop"}] * body["n"]}


def judge(body):
    """A judge that compares the reference with the candidate's final answer literally."""
    prompt = body["messages"][-1]["content"]
    reference, answer = re.search(r"Reference answer:\n(.*)\n\nCandidate's final answer:\n(.*)\n\nVerdict", prompt,
                                  re.S).groups()  # fmt: skip
    verdict = "CORRECT" if reference.strip() == answer.strip() else "INCORRECT"
    return {"choices": [{"message": {"content": verdict}, "finish_reason": "stop"}]}


def write_data(folder: Path) -> None:
    for bench in benchmarks():
        response, right, wrong = CASES[bench["domain"]]
        rows = [{"prompt": f"Question {i}. RESPOND:{response}", "ground_truth": truth,
                 "data_source": bench["benchmark"]} for i, truth in enumerate((right, wrong))]  # fmt: skip
        (folder / f"{bench['benchmark']}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run_script(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHON": sys.executable,
                "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / "out"), **env}  # fmt: skip
    return subprocess.run(["bash", str(RECIPE / "run_eval.sh")], env=full_env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


def test_every_listed_benchmark_routes_to_a_reward_domain():
    from verl_falcon_plugin.rewards.router import DOMAINS

    listed = {b["benchmark"]: b for b in benchmarks()}
    assert {"mmlu_pro", "hle"} <= set(listed) and "ifbench" not in listed  # IFBench removed, reason in the script
    assert "IFBench" in (RECIPE / "run_eval.sh").read_text()
    assert all(b["domain"] in DOMAINS for b in listed.values())
    assert all(b["settings_from"].startswith(("paper", "ours")) for b in listed.values())


@pytest.mark.slow
def test_run_eval_scores_each_benchmark_on_a_right_and_a_wrong_row(tmp_path):
    from verl_falcon_plugin.rewards.sandbox import SandboxServer

    (tmp_path / "data").mkdir()
    write_data(tmp_path / "data")
    model, grader = serve(policy), serve(judge)
    try:
        with SandboxServer(workers=2) as sandbox:
            run = run_script(tmp_path, {
                "SERVER": f"http://127.0.0.1:{model.server_port}/v1", "SERVED": "falcon",
                "JUDGE": f"http://127.0.0.1:{grader.server_port}", "SANDBOX": sandbox.url,
            })  # fmt: skip
    finally:
        model.shutdown()
        grader.shutdown()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()[-len(benchmarks()) :]}
    for bench in benchmarks():
        rows = [json.loads(x) for x in (tmp_path / "out" / f"{bench['benchmark']}.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(len(r["rollouts"]) == int(bench["samples_per_question"]) for r in rows)
        statuses = [{x["status"] for x in r["rollouts"]} for r in rows]
        assert statuses == [{"correct"}, {"wrong"}], (bench["benchmark"], statuses)
        assert float(table[bench["benchmark"]][0]) == 50.0  # pass@1: one of two problems solved


def test_a_judged_benchmark_without_judge_endpoints_fails_before_generating(tmp_path):
    (tmp_path / "data").mkdir()
    write_data(tmp_path / "data")
    for name in os.listdir(tmp_path / "data"):
        if not name.startswith("gpqa"):
            os.unlink(tmp_path / "data" / name)
    run = run_script(tmp_path, {"SERVER": "http://127.0.0.1:9/v1", "SERVED": "x", "JUDGE": "",
                                "FALCON_H1R_JUDGE_ENDPOINTS": ""})  # fmt: skip
    assert run.returncode == 2 and "gpqa_diamond is scored by the LLM judge: set JUDGE=" in run.stderr
    assert not (tmp_path / "out" / "gpqa_diamond.jsonl").exists()
