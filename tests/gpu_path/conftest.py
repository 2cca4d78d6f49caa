"""Run each GPU-path case in its own process (``tests.gpu_path.worker``) and hand its JSON to the tests.

The interpreter must be switched on before triton is imported and the shims are
process-wide, so nothing here touches the pytest process. A case runs once per
session however many tests read it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from verl_falcon_plugin.requires import is_available

REPO = Path(__file__).resolve().parents[2]
MISSING = [m for m in ("torch", "triton", "mamba_ssm", "causal_conv1d", "einops") if not is_available(m)]
# the venv without CUDA gets both from their sdists: scripts/build_venv.sh
requires_kernels = pytest.mark.skipif(
    bool(MISSING), reason=f"{MISSING} not installed (scripts/build_venv.sh installs them in .venv)"
)


@functools.cache
def run_case(case: str) -> dict:
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "tests.gpu_path.worker", case],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise AssertionError(f"worker case {case!r} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
