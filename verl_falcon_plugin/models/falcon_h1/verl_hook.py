"""Installer: verl's ``apply_monkey_patch`` also applies :func:`patch_falcon_h1` to Falcon-H1.

verl's FSDP engine imports ``apply_monkey_patch`` *by name*
(``verl/workers/engine/fsdp/transformer_impl.py``), and ``verl.models.transformers``
re-exports it, so the wrapper replaces all three references. For
``model_type == "falcon_h1"`` it first checks that the Ulysses degree divides the
attention and the SSM heads (verl only checks the attention heads), then runs
verl's function (which still installs its generic flash-attention wrapper; our
attention path does not trigger it, see ``attention.py``), then patches the model
when ``use_remove_padding`` or ``ulysses_sp_size > 1``. Other models are untouched.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, Callable

logger = logging.getLogger("verl_falcon_plugin")

#: modules holding a reference to verl's ``apply_monkey_patch``
REFERENCES = (
    "verl.models.transformers.monkey_patch",
    "verl.models.transformers",
    "verl.workers.engine.fsdp.transformer_impl",
)
_MARK = "_falcon_h1r_wrapped"


def _wrap(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def apply_monkey_patch(model, ulysses_sp_size: int = 1, use_remove_padding: bool = True, *args, **kwargs):
        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) != "falcon_h1":
            return original(model, ulysses_sp_size, use_remove_padding, *args, **kwargs)
        from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1
        from verl_falcon_plugin.models.falcon_h1.ulysses import check_divisible

        check_divisible(
            sp_size=ulysses_sp_size,
            attention_heads=config.num_attention_heads,
            key_value_heads=config.num_key_value_heads,
            ssm_heads=config.mamba_n_heads,
        )
        result = original(model, ulysses_sp_size, use_remove_padding, *args, **kwargs)
        if use_remove_padding or ulysses_sp_size > 1:
            patched = patch_falcon_h1(model, packed=True, ulysses=True)
            logger.info("falcon_h1r: apply_monkey_patch patched %s", "; ".join(patched))
        return result

    setattr(apply_monkey_patch, _MARK, True)
    apply_monkey_patch.__wrapped_original__ = original
    return apply_monkey_patch


def install() -> list[str]:
    """Wrap every reference to verl's ``apply_monkey_patch``; idempotent."""
    source = importlib.import_module(REFERENCES[0])
    current = source.apply_monkey_patch
    wrapped = current if getattr(current, _MARK, False) else _wrap(current)
    installed = []
    for name in REFERENCES:
        module = importlib.import_module(name)
        if not getattr(module.apply_monkey_patch, _MARK, False):
            module.apply_monkey_patch = wrapped
        installed.append(f"Falcon-H1 packed + Ulysses patch in {name}.apply_monkey_patch")
    return installed
