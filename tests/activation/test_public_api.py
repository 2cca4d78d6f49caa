"""Every public name each package declares resolves (the lazy exports have no stale entries)."""

from __future__ import annotations

import importlib

import pytest

from verl_falcon_plugin.requires import MissingDependencyError

PACKAGES = [
    "verl_falcon_plugin",
    "verl_falcon_plugin.preflight",
    "verl_falcon_plugin.testing",
    "verl_falcon_plugin.losses",
    "verl_falcon_plugin.sampling",
    "verl_falcon_plugin.rewards",
    "verl_falcon_plugin.rewards.code",
    "verl_falcon_plugin.rewards.sandbox",
    "verl_falcon_plugin.data",
    "verl_falcon_plugin.models",
    "verl_falcon_plugin.models.falcon_h1",
    "liger_patches",
    "vllm_plugins.deepconf",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, f"{package} declares no public API"
    for name in module.__all__:
        try:
            getattr(module, name)
        except MissingDependencyError:  # e.g. the vLLM processor, in the verl environment
            continue
