"""Lazy imports of the frameworks this distribution plugs into.

Nothing in the package imports verl, torch, transformers, Liger or vLLM at module
level: users install us *alongside* whichever of those they run, so every import
of a framework goes through :func:`require`, which names the extra that provides it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

DISTRIBUTION = "verl-falcon-plugin"

#: top-level module -> the extra of this distribution that installs it
EXTRA_FOR_MODULE: dict[str, str] = {
    "verl": "verl",
    "torch": "verl",
    "transformers": "verl",
    "ray": "verl",
    "hydra": "verl",
    "omegaconf": "verl",
    "liger_kernel": "liger",
    "triton": "liger",
    "vllm": "vllm",
    "mamba_ssm": "cuda",
    "causal_conv1d": "cuda",
    "flash_attn": "cuda",
    "datasets": "data",
    "datasketch": "data",
    "matplotlib": "plots",
}


class MissingDependencyError(ImportError):
    """A framework needed by the called feature is not installed."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or fail with the ``pip install`` line that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = EXTRA_FOR_MODULE.get(top)
        fix = f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {top}"
        raise MissingDependencyError(
            f"{feature} needs `{module}`, which cannot be imported ({err}). Install it with: {fix}"
        ) from err


def is_available(module: str) -> bool:
    """True when ``module`` can be imported (without importing its parents' side effects twice)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
