"""The loss and LR-schedule patches (``losses.verl_hook``, ``optim.verl_hook``), one per verl module they patch.

``losses.verl_hook.install`` imports every module it patches (the FSDP engine, the
engine workers, both SFT trainers). Activation instead runs each step below when its own
module is imported (:mod:`verl_falcon_plugin.import_hooks`), so a process that never
builds an engine never pays for importing one. Each step is idempotent, imports only the
module that triggered it (already loaded by then), and returns what it installed; the
wrappers are ``losses.verl_hook``'s own.
"""

from __future__ import annotations

import importlib
import sys

from verl_falcon_plugin.losses import verl_hook


def register_policy_loss() -> list[str]:
    """``register_policy_loss("falcon_h1r")``: importing ``losses.grpo`` registers it."""
    grpo = sys.modules.get("verl_falcon_plugin.losses.grpo")
    if grpo is not None and getattr(grpo.__spec__, "_initializing", False):
        # losses.grpo itself imported core_algos (this hook's trigger): it registers when its body finishes
        return ["policy loss 'falcon_h1r' (registered by losses.grpo, being imported)"]
    import verl_falcon_plugin.losses.grpo  # noqa: F401

    core_algos = importlib.import_module("verl.trainer.ppo.core_algos")
    if "falcon_h1r" not in core_algos.POLICY_LOSS_REGISTRY:
        raise RuntimeError("policy loss 'falcon_h1r' did not register in verl's POLICY_LOSS_REGISTRY")
    return ["policy loss 'falcon_h1r' (verl register_policy_loss)"]


def patch_forward_backward_batch() -> list[str]:
    transformer_impl = importlib.import_module("verl.workers.engine.fsdp.transformer_impl")
    verl_hook._patch_attr(transformer_impl.FSDPEngine, "forward_backward_batch", verl_hook.count_positive_tokens_hook)
    return ["FSDPEngine.forward_backward_batch: DP-global positive-token count for falcon_h1r"]


def patch_ppo_loss() -> list[str]:
    """Both names verl binds ``ppo_loss`` at: its module and ``engine_workers`` (a by-name import)."""
    losses = importlib.import_module("verl.workers.utils.losses")
    engine_workers = importlib.import_module("verl.workers.engine_workers")
    if not verl_hook._is_patched(losses.ppo_loss):
        losses.ppo_loss = verl_hook.positive_tokens_to_policy_loss(losses.ppo_loss)
    engine_workers.ppo_loss = losses.ppo_loss
    return ["ppo_loss: mini-batch positive-token count to the falcon_h1r loss"]


def _patch_sft_build_engine(module_name: str) -> list[str]:
    trainer = importlib.import_module(module_name).SFTTrainer
    verl_hook._patch_attr(trainer, "_build_engine", verl_hook.balance_dp_token_hook)
    return [f"{module_name}.SFTTrainer: data.balance_dp_token=True -> balanced DP token loss with eps"]


def patch_sft_trainer_build_engine() -> list[str]:
    return _patch_sft_build_engine("verl.trainer.sft_trainer")


def patch_sft_trainer_ray_build_engine() -> list[str]:
    return _patch_sft_build_engine("verl.trainer.sft_trainer_ray")


def patch_optimizer_config() -> list[str]:
    """``optim.verl_hook``'s config half: verl validates optimizer configs in the driver too."""
    from verl_falcon_plugin.optim import verl_hook as optim_hook

    config_cls = importlib.import_module("verl.workers.config.optimizer").FSDPOptimizerConfig
    optim_hook._wrap(config_cls, "__post_init__", optim_hook._post_init)
    return ["FSDPOptimizerConfig accepts lr_scheduler_type=linear"]


def patch_lr_scheduler() -> list[str]:
    """``optim.verl_hook``'s engine half, once the FSDP engine is imported."""
    from verl_falcon_plugin.optim import verl_hook as optim_hook

    engine_cls = importlib.import_module("verl.workers.engine.fsdp.transformer_impl").FSDPEngine
    optim_hook._wrap(engine_cls, "_build_lr_scheduler", optim_hook._build_lr_scheduler)
    return ["FSDPEngine._build_lr_scheduler builds the linear schedule (warmup, then linear decay)"]


def wrap_apply_monkey_patch() -> list[str]:
    """``models.falcon_h1.verl_hook``'s wrapper on ``apply_monkey_patch``, as soon as verl's module defines it.

    The modules that import it by name (``verl.models.transformers``, the FSDP engine) then bind the
    wrapper; those already loaded are rebound. The engine's own trigger runs the full installer.
    """
    from verl_falcon_plugin.models.falcon_h1 import verl_hook as falcon_hook

    source = importlib.import_module(falcon_hook.REFERENCES[0])
    current = source.apply_monkey_patch
    wrapped = current if getattr(current, falcon_hook._MARK, False) else falcon_hook._wrap(current)
    installed = []
    for name in falcon_hook.REFERENCES:
        module = sys.modules.get(name)
        if module is None or not hasattr(module, "apply_monkey_patch"):
            continue  # not imported yet, or importing it now: its by-name import will bind the wrapper
        if not getattr(module.apply_monkey_patch, falcon_hook._MARK, False):
            module.apply_monkey_patch = wrapped
        installed.append(f"Falcon-H1 packed + Ulysses patch in {name}.apply_monkey_patch")
    return installed
