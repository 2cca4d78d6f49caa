"""Make verl's ``actor_rollout_ref.model.use_liger=True`` apply *our* Falcon-H1 patch.

verl 0.9.1 (``verl/workers/engine/fsdp/transformer_impl.py``, ``_build_module``)
does, after loading the HF model and before its own ``apply_monkey_patch``::

    from liger_kernel.transformers.monkey_patch import _apply_liger_kernel_to_instance
    _apply_liger_kernel_to_instance(model=module, fused_linear_cross_entropy=False, swiglu=True)

which looks the model type up in Liger's ``MODEL_TYPE_TO_APPLY_LIGER_FN`` and
passes the keyword arguments its function accepts. The least invasive hook is
therefore that registry entry: pointing ``"falcon_h1"`` at
:func:`liger_patches.apply_liger_kernel_to_falcon_h1` changes nothing else in
verl or Liger, and also covers Liger's own ``_apply_liger_kernel`` and
``AutoLigerKernelForCausalLM``.

On that path verl asks for ``fused_linear_cross_entropy=False`` and we honour
it: verl's actor needs log-probs and entropy at a temperature, not a loss, so
the LM head stays HF's, ``lm_head_multiplier`` included, and the logits are
materialised. RoPE, RMSNorm, the gated RMSNorm and the SwiGLU MLP are fused.

verl's own logits-free path is ``model.use_fused_kernels=True``: its
``dense_common.forward_with_{torch,triton}_backend`` takes the decoder's last
hidden state and ``lm_head.weight`` and never applies Falcon-H1's
``lm_head_multiplier`` (log-probs off by ~0.3 on a tiny model). Both read the
hidden state through ``dense_common.forward_base_model``, so :func:`install`
wraps that one function: for ``falcon_h1`` it returns the hidden state times
``lm_head_multiplier`` (exact, the LM head has no bias); other models are
untouched.
"""

from __future__ import annotations

import functools
import logging

from verl_falcon_plugin.requires import is_available, require

logger = logging.getLogger(__name__)

MODEL_TYPE = "falcon_h1"


def install() -> list[str]:
    """Register our function for ``falcon_h1`` in Liger's table; fix verl's fused-kernel head; idempotent."""
    installed = _install_fused_kernels_multiplier() if is_available("verl") else []
    if not is_available("liger_kernel"):
        # verl's use_liger imports liger_kernel itself and fails loudly without it: nothing to hook
        logger.info("liger_kernel is not installed: verl's use_liger is unavailable, no Liger hook installed")
        return installed
    monkey_patch = require("liger_kernel.transformers.monkey_patch", "verl use_liger for Falcon-H1")
    from liger_patches.falcon_h1 import apply_liger_kernel_to_falcon_h1

    monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN[MODEL_TYPE] = apply_liger_kernel_to_falcon_h1
    return installed + [
        f"liger_kernel MODEL_TYPE_TO_APPLY_LIGER_FN[{MODEL_TYPE!r}] -> liger_patches.apply_liger_kernel_to_falcon_h1"
    ]


def _with_lm_head_multiplier(forward_base_model):
    @functools.wraps(forward_base_model)
    def wrapped(self, *args, **kwargs):
        outputs = forward_base_model(self, *args, **kwargs)
        if getattr(self.config, "model_type", None) == MODEL_TYPE:
            outputs.last_hidden_state = outputs.last_hidden_state * self.model.lm_head_multiplier
        return outputs

    wrapped._falcon_h1r_lm_head_multiplier = True
    return wrapped


def _install_fused_kernels_multiplier() -> list[str]:
    dense_common = require("verl.models.transformers.dense_common", "verl use_fused_kernels for Falcon-H1")
    if not getattr(dense_common.forward_base_model, "_falcon_h1r_lm_head_multiplier", False):
        dense_common.forward_base_model = _with_lm_head_multiplier(dense_common.forward_base_model)
    return ["verl dense_common.forward_base_model: falcon_h1 hidden state x lm_head_multiplier (use_fused_kernels)"]
