"""The runner's pieces that need no engine: settings resolution, the server payload, summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from verl_falcon_plugin.cli import CliError, build_parser
from verl_falcon_plugin.cli.deepconf import resolve_settings
from verl_falcon_plugin.testing.deepconf_traces import SyntheticPopulation
from vllm_plugins.deepconf.online import OnlineConfig
from vllm_plugins.deepconf.runner import Problem, SamplingSettings, ServerGenerator, load_problems, run_problems


def test_settings_paper_defaults_then_yaml_then_command_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("budget: 64\neta: 0.9\nwindow: 512\n")
    problems = tmp_path / "x.jsonl"
    problems.write_text('{"prompt": "1+1?", "answer": "2"}\n')
    argv = ["deepconf", "run", str(problems), "--out", "o", "--config", str(cfg), "--eta", "0.1"]
    args = build_parser().parse_args(argv)
    s = resolve_settings(args)
    assert (s.budget, s.eta, s.window, s.n_init, s.temperature, s.top_p, s.max_tokens) == (
        64,
        0.1,
        512,
        16,
        0.6,
        0.95,
        65536,
    )
    cfg.write_text("budjet: 3\n")
    with pytest.raises(CliError, match="budjet"):
        resolve_settings(args)


def test_server_payload_uses_flat_vllm_xargs(monkeypatch):
    gen = ServerGenerator("http://h:8000/", "m", "prompt", SamplingSettings(max_tokens=10, seed=3))
    assert "vllm_xargs" not in gen.payload(4, None, 2048)  # warm-up: never stopped
    body = gen.payload(4, 11.5, 2048)
    assert body["vllm_xargs"] == {"deepconf_threshold": 11.5, "deepconf_window": 2048, "deepconf_top_k": 20}
    assert all(not isinstance(v, (dict, list)) for v in body["vllm_xargs"].values())

    top = [{f"t{j}": -0.1 * j for j in range(20)} for _ in range(3)]
    reply = {"choices": [{"index": 0, "text": "so \\boxed{5}", "logprobs": {"top_logprobs": top}}]}

    class Response:
        status_code = 200

        def json(self):
            return reply

    sent = {}
    monkeypatch.setattr("requests.post", lambda url, json, timeout: sent.update(url=url, body=json) or Response())
    (trace,) = gen.generate(1, None, 2048)
    assert sent["url"] == "http://h:8000/v1/completions" and trace.answer == "5"
    np.testing.assert_allclose(trace.confs, np.full(3, 0.95))


def test_load_problems_rejects_rows_without_a_prompt(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"x": 1}) + "\n")
    with pytest.raises(ValueError, match="'prompt' or a 'problem'"):
        load_problems(path)


def test_run_problems_on_synthetic_generators(tmp_path):
    config = OnlineConfig(budget=24, n_init=8, eta=0.1, window=64, batch_size=8, vote_window=64)
    problems = [Problem(str(i), "", "42") for i in range(2)]
    summary = run_problems(problems, lambda p: SyntheticPopulation(seed=int(p.id), mean_length=400), config, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert summary["tokens"] == sum(r["tokens"] for r in rows) and summary["traces"] == 48
    assert 0.0 < summary["tokens_saved_fraction"] < 1.0
    assert (tmp_path / "confidence_0.png").exists() and not list(tmp_path.glob(".*"))
