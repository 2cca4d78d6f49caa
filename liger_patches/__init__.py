"""Liger-Kernel fused kernels applied to Falcon-H1, exact with every µP multiplier.

The public names are resolved lazily (PEP 562), so ``import liger_patches``
imports neither torch nor triton.
"""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "apply_liger_kernel_to_falcon_h1": ".falcon_h1",
    "LigerFalconH1RMSNormGated": ".gated_rms_norm",
    "LigerGatedRMSNormFunction": ".gated_rms_norm",
    "liger_gated_rms_norm": ".gated_rms_norm",
    "LigerFalconH1MLP": ".mlp",
    "falcon_h1_lce_forward": ".forward",
    "falcon_h1_fused_linear_cross_entropy": ".fused_ce",
    "shift_labels_for_packed": ".fused_ce",
    "install_verl_hook": ".verl_hook:install",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
