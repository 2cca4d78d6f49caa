"""``apply_liger_kernel_to_falcon_h1``: Liger's upstream patch for Falcon-H1, completed and made exact.

Upstream (Liger 0.8.5) covers RoPE, RMSNorm, SwiGLU and fused linear CE. This
function reuses its RoPE, RMSNorm and cross-entropy parts unchanged, and
replaces or adds:

* ``gated_rms_norm``: the Mamba mixer's ``FalconH1RMSNormGated`` on a fused
  Triton kernel (:mod:`liger_patches.gated_rms_norm`), which upstream leaves alone;
* ``swiglu``: :mod:`liger_patches.mlp`, exact with ``mlp_bias=True`` (upstream's
  folding of ``down_multiplier`` scales the ``down_proj`` bias too);
* ``fused_linear_cross_entropy``: :mod:`liger_patches.forward`, packed- and
  Ulysses-aware.

Like every ``apply_liger_kernel_to_*``: with ``model=None`` it patches the
transformers classes (models built afterwards are patched); with a model it
also patches that instance's existing modules in place, keeping parameters
and ``state_dict`` keys unchanged. Only ``forward`` methods are rebound, so
a later patch that replaces the mixer's, attention's or decoder's ``forward``
(packing, Ulysses SP) composes with it in either order, as long as that patch
keeps calling ``self.norm``, ``apply_rotary_pos_emb`` and the submodules.
"""

from __future__ import annotations

import logging
from types import MethodType

from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)

FEATURE = "Liger kernels for Falcon-H1"


def _upstream():
    return require("liger_kernel.transformers.monkey_patch", FEATURE)


def _modeling():
    return require("transformers.models.falcon_h1.modeling_falcon_h1", FEATURE)


def _bind(module, name: str, function, display_name: str | None = None) -> None:
    """Liger's instance patching: rebind a method on this module object only (state untouched)."""
    module.__dict__[name] = MethodType(function, module)
    if display_name is not None:
        module.__dict__["_get_name"] = MethodType(lambda self: display_name, module)


def _patch_instance(model, *, gated_rms_norm: bool, swiglu: bool, fused_linear_cross_entropy: bool) -> None:
    from liger_patches.forward import falcon_h1_lce_forward
    from liger_patches.gated_rms_norm import LigerFalconH1RMSNormGated
    from liger_patches.mlp import check_swiglu_activation, liger_falcon_h1_mlp_forward

    if fused_linear_cross_entropy:
        _bind(model, "forward", falcon_h1_lce_forward)
    base_model = getattr(model, model.base_model_prefix, model)
    for layer in base_model.layers:
        if swiglu:
            check_swiglu_activation(model.config)
            _bind(layer.feed_forward, "forward", liger_falcon_h1_mlp_forward, "LigerFalconH1MLP")
        norm = getattr(layer.mamba, "norm", None)
        if gated_rms_norm and norm is not None:
            _bind(norm, "forward", LigerFalconH1RMSNormGated.forward, "LigerFalconH1RMSNormGated")


def apply_liger_kernel_to_falcon_h1(
    model=None,
    rope: bool = True,
    rms_norm: bool = True,
    gated_rms_norm: bool = True,
    swiglu: bool = True,
    fused_linear_cross_entropy: bool = True,
    cross_entropy: bool = False,
) -> None:
    """Apply Liger's fused kernels to HF Falcon-H1, exact with every µP multiplier.

    Args:
        model: an instantiated ``FalconH1ForCausalLM`` to patch in place; ``None`` patches the classes.
        rope: Liger's fused rotary embedding (upstream's).
        rms_norm: Liger's RMSNorm for the decoder and final norms (upstream's, llama casting like HF).
        gated_rms_norm: the fused grouped gated RMSNorm of the Mamba mixer (ours).
        swiglu: the fused SwiGLU MLP with ``mlp_multipliers`` (ours: exact with ``mlp_bias``).
        fused_linear_cross_entropy: the loss without materialised logits, ``lm_head_multiplier`` folded (ours).
        cross_entropy: Liger's cross-entropy inside HF's loss (upstream's); exclusive with the fused one.
    """
    if cross_entropy and fused_linear_cross_entropy:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True: choose one")
    if model is not None and getattr(model.config, "model_type", None) != "falcon_h1":
        raise ValueError(
            f"apply_liger_kernel_to_falcon_h1 got a model of type {getattr(model.config, 'model_type', None)!r}"
        )
    upstream = _upstream()
    modeling = _modeling()
    # upstream's parts that are exact as they are; its swiglu and lce forward are replaced below
    upstream.apply_liger_kernel_to_falcon_h1(
        rope=rope,
        rms_norm=rms_norm,
        swiglu=False,
        cross_entropy=cross_entropy,
        fused_linear_cross_entropy=False,
        model=model,
    )
    if swiglu:
        from liger_patches.mlp import LigerFalconH1MLP

        modeling.FalconH1MLP = LigerFalconH1MLP
    if gated_rms_norm:
        from liger_patches.gated_rms_norm import LigerFalconH1RMSNormGated

        modeling.FalconH1RMSNormGated = LigerFalconH1RMSNormGated
    if fused_linear_cross_entropy and model is None:
        from liger_patches.forward import falcon_h1_lce_forward

        modeling.FalconH1ForCausalLM.forward = falcon_h1_lce_forward
    if model is not None:
        _patch_instance(
            model,
            gated_rms_norm=gated_rms_norm,
            swiglu=swiglu,
            fused_linear_cross_entropy=fused_linear_cross_entropy,
        )
    logger.info(
        "Liger kernels applied to Falcon-H1 (%s): rope=%s rms_norm=%s gated_rms_norm=%s swiglu=%s "
        "fused_linear_cross_entropy=%s cross_entropy=%s",
        "instance" if model is not None else "classes",
        rope,
        rms_norm,
        gated_rms_norm,
        swiglu,
        fused_linear_cross_entropy,
        cross_entropy,
    )
