"""``falcon-h1r demo``: a missing vLLM python, an empty or malformed settings.json in --out.

``run_stages`` is replaced by a failure: none of these may start the pipeline.
"""

from __future__ import annotations

import sys

import pytest

from tests.cli.conftest import assert_usage_error


@pytest.fixture(autouse=True)
def no_pipeline(monkeypatch):
    from verl_falcon_plugin.demo import __main__ as demo_main

    monkeypatch.setattr(demo_main, "run_stages", lambda *a, **k: pytest.fail("the demo started despite bad input"))


def test_missing_vllm_python(cli, tmp_path):
    missing = tmp_path / "no-venv" / "bin" / "python"
    assert_usage_error(cli("demo", "--out", tmp_path / "out", "--vllm-python", missing), "demo", str(missing))


@pytest.mark.parametrize("content, line", [("", 1), ('{"problems": 8,\n  "steps": }\n', 2)])
def test_empty_or_malformed_settings(cli, tmp_path, content, line):
    out = tmp_path / "out"
    out.mkdir()
    (out / "settings.json").write_text(content)
    outcome = cli("demo", "--quick", "--out", out, "--vllm-python", sys.executable)
    assert_usage_error(outcome, "demo", f"{out / 'settings.json'}:{line}:", "not valid JSON")
