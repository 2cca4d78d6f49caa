"""``falcon-h1r sandbox serve`` as users start it: a separate process, stopped with SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
import requests
import sandbox_fusion
from sandbox_fusion import RunCodeRequest

from tests.rewards.sandbox_helpers import surviving_processes


@pytest.mark.slow
def test_serve_answers_the_official_client_and_cleans_up_on_sigterm():
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
