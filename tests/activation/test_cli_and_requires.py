"""The `falcon-h1r` command and the lazy framework imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from verl_falcon_plugin import cli
from verl_falcon_plugin.preflight import CheckResult, registry
from verl_falcon_plugin.requires import MissingDependencyError, require


def test_require_names_the_extra_that_installs_a_missing_framework() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'verl-falcon-plugin\[cuda\]'"):
        require("mamba_ssm.ops.triton.ssd_combined", "the GPU scan")


def test_importing_the_packages_imports_no_framework() -> None:
    code = (
        "import sys, verl_falcon_plugin, vllm_plugins, liger_patches, verl_falcon_plugin.rewards; "
        "heavy = [m for m in ('torch', 'verl', 'vllm', 'transformers', 'triton') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_console_script_lists_the_checks() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "falcon-h1r"), "check", "--list"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "environment.versions" in proc.stdout
    assert "activation.hydra_group" in proc.stdout


def test_check_exits_non_zero_on_a_failing_check(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(registry, "_CHECKS", dict(registry._CHECKS))
    registry.register_check("test.broken", area="test")(lambda: CheckResult.within(1e-2, 1e-5, "max |Δ|"))
    registry.register_check("test.fine", area="test")(lambda: CheckResult.within(1e-7, 1e-5, "max |Δ|"))
    assert cli.main(["check", "test"]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] test.broken" in out and "[PASS] test.fine" in out
    assert "1 passed, 1 failed, 0 skipped" in out


def test_a_crashing_check_is_reported_as_a_failure(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(registry, "_CHECKS", dict(registry._CHECKS))

    def crash() -> CheckResult:
        raise RuntimeError("kernel exploded")

    registry.register_check("test.crash", area="test")(crash)
    assert cli.main(["check", "test.crash"]) == 1
    assert "raised RuntimeError: kernel exploded" in capsys.readouterr().out


def test_unknown_check_is_a_clear_error(capsys) -> None:
    assert cli.main(["check", "no.such.check"]) == 2
    err = capsys.readouterr().err
    assert "falcon-h1r check: error: CHECK_OR_AREA: unknown check or area ['no.such.check']" in err


def test_nan_error_fails() -> None:
    assert CheckResult.within(float("nan"), 1.0, "x").status is registry.Status.FAIL
