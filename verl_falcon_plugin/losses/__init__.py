"""Balanced data-parallel token loss and the Falcon-H1R GRPO policy loss (``falcon_h1r``).

Public names are imported lazily: this package imports neither torch nor verl.
"""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_EPS": "verl_falcon_plugin.losses.balanced_dp",
    "balanced_token_mean": "verl_falcon_plugin.losses.balanced_dp",
    "balanced_sft_loss": "verl_falcon_plugin.losses.balanced_dp",
    "global_token_count": "verl_falcon_plugin.losses.balanced_dp",
    "FalconH1RPolicyLossConfig": "verl_falcon_plugin.losses.grpo",
    "compute_policy_loss_falcon_h1r": "verl_falcon_plugin.losses.grpo",
    "positive_token_mask": "verl_falcon_plugin.losses.grpo",
    "correct_rows": "verl_falcon_plugin.losses.positives",
    "MissingCorrectnessError": "verl_falcon_plugin.losses.positives",
    "install": "verl_falcon_plugin.losses.verl_hook",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
