"""A Falcon-H1 config that vLLM would serve differently from training is flagged, at patch time and in
the preflight. The mismatch itself is shown against a real vLLM engine in tests/vllm/."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from verl_falcon_plugin.models.falcon_h1.serving import vllm_serving_mismatches
from verl_falcon_plugin.testing import tiny_falcon_h1, tiny_falcon_h1_config

FALCON_H1R_SETTING = dict(mamba_rms_norm=True, mamba_norm_before_gate=False)
SERVED_DIFFERENTLY = dict(mamba_rms_norm=True, mamba_norm_before_gate=True)  # transformers' default order


@pytest.mark.parametrize(
    ("settings", "flagged"),
    [
        (FALCON_H1R_SETTING, False),
        (SERVED_DIFFERENTLY, True),
        (dict(mamba_rms_norm=False, mamba_norm_before_gate=True), False),  # no gated norm: the order is moot
    ],
)
def test_only_a_normalise_first_gated_norm_is_flagged(settings: dict, flagged: bool) -> None:
    mismatches = vllm_serving_mismatches(tiny_falcon_h1_config(**settings))
    assert bool(mismatches) is flagged
    if flagged:
        assert "mamba_norm_before_gate=False" in mismatches[0]  # the message names the fix


def test_patching_such_a_model_warns(caplog: pytest.LogCaptureFixture) -> None:
    from verl_falcon_plugin import patch_falcon_h1

    with caplog.at_level(logging.WARNING, logger="verl_falcon_plugin.models.falcon_h1.patch"):
        patch_falcon_h1(tiny_falcon_h1(**SERVED_DIFFERENTLY))
    assert "served differently by vLLM" in caplog.text


def preflight(model: Path) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "falcon-h1r"
    return subprocess.run(
        [str(cli), "check", "falcon_h1.vllm_serving_parity", "--model", str(model)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("settings", "status", "code"), [(FALCON_H1R_SETTING, "PASS", 0), (SERVED_DIFFERENTLY, "FAIL", 1)]
)
def test_preflight_checks_the_users_config(tmp_path: Path, settings: dict, status: str, code: int) -> None:
    tiny_falcon_h1_config(**settings).save_pretrained(tmp_path)  # config.json only: no weights needed
    proc = preflight(tmp_path)
    assert f"[{status}] falcon_h1.vllm_serving_parity" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == code
