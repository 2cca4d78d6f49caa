"""Activation order and cost: lazy patches, the cpu platform first (only when asked), fatal failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

HEAVY = (
    "verl.workers.engine.fsdp.transformer_impl",
    "verl.trainer.sft_trainer",
    "liger_kernel.transformers.monkey_patch",
)

REPORT = """
import json, sys, verl
heavy = {heavy!r}
before = [m for m in heavy if m in sys.modules]
cpu_modules = sorted(m for m in sys.modules if m.startswith("verl_falcon_plugin.cpu"))
from verl.plugin.platform import get_platform
from verl.utils.device import get_device_name
platform = type(get_platform()).__name__, get_device_name()
import verl.workers.engine.fsdp.transformer_impl as impl
from verl.workers.engine.base import EngineRegistry
print(json.dumps({{"heavy_at_import": before, "cpu_modules": cpu_modules, "platform": platform,
    "patched": getattr(impl.apply_monkey_patch, "_falcon_h1r_wrapped", False),
    "cpu_engine": "cpu" in EngineRegistry._engines["language_model"]["fsdp2"]}}))
"""


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**full_env, **env})  # fmt: skip


def report(**env: str) -> dict:
    proc = run(REPORT.format(heavy=HEAVY), **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_activation_imports_no_engine_and_patches_it_when_it_is_imported() -> None:
    result = report()
    assert result["heavy_at_import"] == []
    assert result["patched"] is True
    assert result["cpu_modules"] == []  # no CPU code without VERL_PLATFORM=cpu
    assert result["cpu_engine"] is False


def test_without_the_entry_point_the_engine_stays_unpatched() -> None:
    """Negative control: the patch comes from our hook, not from importing the engine."""
    assert report(VERL_USE_EXTERNAL_PLUGINS="none")["patched"] is False


def test_verl_platform_cpu_registers_the_cpu_platform_before_verl_asks() -> None:
    result = report(VERL_PLATFORM="cpu")
    assert result["platform"] == ["PlatformCPU", "cpu"]
    assert result["cpu_engine"] is True
    assert result["patched"] is True


def test_verl_platform_cpu_without_the_plugin_is_unknown_to_verl() -> None:
    """Negative control: verl itself has no cpu platform (the failure users hit today)."""
    proc = run(REPORT.format(heavy=HEAVY), VERL_PLATFORM="cpu", VERL_USE_EXTERNAL_PLUGINS="none")
    assert proc.returncode != 0
    assert "Unknown platform 'cpu'" in proc.stderr


def test_a_failed_activation_is_fatal_in_the_process() -> None:
    code = (
        "from packaging.specifiers import SpecifierSet\n"
        "import verl_falcon_plugin.activation as activation\n"
        "activation.SUPPORTED_VERL = SpecifierSet('>=99')\n"
        "import verl\n"
        "print('verl imported without the plugin')\n"
    )
    proc = run(code)
    assert proc.returncode != 0
    assert "verl imported without the plugin" not in proc.stdout
    assert "PluginActivationFailed" in proc.stderr and "activation FAILED" in proc.stderr
