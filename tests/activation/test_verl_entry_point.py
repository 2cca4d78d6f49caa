"""The ``verl.plugins`` entry point: `import verl` activates the plugin, loudly and once."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import logging
import os
import subprocess
import sys

import pytest
import verl  # noqa: F401  (activates the plugin before any test swaps its state)

from verl_falcon_plugin import activation

REPORT_ACTIVATION = """
import json, verl
from verl_falcon_plugin.activation import ACTIVATION, INSTALLERS
print(json.dumps({"done": ACTIVATION.done, "installed": ACTIVATION.installed, "installers": len(INSTALLERS)}))
"""


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
        check=True,
    )


def test_distribution_declares_its_entry_points() -> None:
    eps = metadata.distribution("verl-falcon-plugin").entry_points
    by_group = {(ep.group, ep.name): ep.value for ep in eps}
    assert by_group[("verl.plugins", "falcon_h1r")] == "verl_falcon_plugin.verl_entry_point"
    assert by_group[("vllm.logits_processors", "deepconf")] == (
        "vllm_plugins.deepconf.vllm_processor:DeepConfLogitsProcessor"
    )
    assert by_group[("console_scripts", "falcon-h1r")] == "verl_falcon_plugin.cli:main"


def test_import_verl_activates_the_plugin_and_logs_each_entry_at_info() -> None:
    proc = run_python(REPORT_ACTIVATION)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["done"] is True
    assert len(report["installed"]) >= report["installers"]
    for name in report["installed"]:
        assert f"falcon_h1r: installed {name}" in proc.stderr
    assert "falcon_h1r: plugin active in verl" in proc.stderr


def test_without_verls_plugin_discovery_nothing_is_activated() -> None:
    """The negative control: the entry point, not some import side effect, is what activates us."""
    proc = run_python(REPORT_ACTIVATION, VERL_USE_EXTERNAL_PLUGINS="none")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"done": False, "installed": [], "installers": report["installers"]}


@pytest.fixture
def fresh_activation(monkeypatch: pytest.MonkeyPatch) -> activation.Activation:
    state = activation.Activation()
    monkeypatch.setattr(activation, "ACTIVATION", state)
    return state


def test_register_is_idempotent(monkeypatch: pytest.MonkeyPatch, fresh_activation) -> None:
    calls: list[int] = []

    def installer() -> list[str]:
        calls.append(1)
        return ["a fake patch"]

    monkeypatch.setattr(activation, "INSTALLERS", (("fake", "tests.activation.fake_installer:install"),))
    monkeypatch.setattr(activation, "_resolve", lambda target: installer)
    assert activation.register() == ["a fake patch"]
    assert activation.register() == ["a fake patch"]
    assert calls == [1]


def test_unsupported_verl_version_raises_and_logs_error(
    monkeypatch: pytest.MonkeyPatch, fresh_activation, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(verl, "__version__", "0.8.0")
    with caplog.at_level(logging.ERROR, logger="verl_falcon_plugin"):
        with pytest.raises(activation.UnsupportedVersionError, match=r"verl 0\.8\.0 is installed"):
            activation.register()
    assert "activation FAILED" in caplog.text
    assert not fresh_activation.done


def test_a_failing_installer_raises_activation_error(monkeypatch: pytest.MonkeyPatch, fresh_activation) -> None:
    def broken() -> list[str]:
        raise AttributeError("verl moved apply_monkey_patch")

    monkeypatch.setattr(activation, "INSTALLERS", (("the model patches", "x:y"),))
    monkeypatch.setattr(activation, "_resolve", lambda target: broken)
    with pytest.raises(activation.ActivationError, match="could not install the model patches"):
        activation.register()
    assert not fresh_activation.done


def test_register_before_importing_verl_does_not_deadlock() -> None:
    """verl's entry-point loader calls register() while the user's register() is importing verl."""
    proc = run_python(
        "import verl_falcon_plugin as p; installed = p.register(); import verl; "
        "assert p.register() == installed; print('ok')"
    )
    assert proc.stdout.strip().endswith("ok")
