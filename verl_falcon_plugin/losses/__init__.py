"""Balanced data-parallel token loss and the Falcon-H1R GRPO policy loss (``falcon_h1r``).

Public names are imported lazily: this package imports neither torch nor verl.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_EPS": "verl_falcon_plugin.losses.balanced_dp",
    "balanced_token_mean": "verl_falcon_plugin.losses.balanced_dp",
    "balanced_sft_loss": "verl_falcon_plugin.losses.balanced_dp",
    "global_token_count": "verl_falcon_plugin.losses.balanced_dp",
    "FalconH1RPolicyLossConfig": "verl_falcon_plugin.losses.grpo",
    "compute_policy_loss_falcon_h1r": "verl_falcon_plugin.losses.grpo",
    "positive_token_mask": "verl_falcon_plugin.losses.grpo",
    "install": "verl_falcon_plugin.losses.verl_hook",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
