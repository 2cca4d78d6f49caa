"""Installs the balanced DP token loss and the ``falcon_h1r`` policy loss into verl 0.9.1.

Patched only where verl lacks something (see ``balanced_dp`` for what verl already
does exactly):

1. ``register_policy_loss("falcon_h1r")`` (verl's registry; importing ``grpo`` registers it).
2. ``FSDPEngine.forward_backward_batch``: before verl splits a training mini-batch
   into micro-batches, count its positive-sample tokens (responses the reward's ``acc``
   calls correct, :mod:`~verl_falcon_plugin.losses.positives`) and all-reduce them over
   the DP group, next to verl's own ``batch_num_tokens``.
3. ``ppo_loss`` (as bound in ``verl.workers.engine_workers``): hand that count and the
   micro-batch's correct rows to the policy loss it calls (context variables: verl's only
   channel, ``global_batch_info``, is splatted into ``agg_loss``, which rejects extra keys).
4. ``SFTTrainer._build_engine`` (SPMD and Ray trainers): ``data.balance_dp_token=True``,
   a no-op key in verl 0.9.1, now selects :func:`balanced_sft_loss` (verl's
   ``sft_loss`` plus eps, ``data.balance_dp_token_eps``).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Callable

from verl_falcon_plugin.requires import require

_PATCHED = "__falcon_h1r_losses__"

#: non-tensor key of the mini-batch TensorDict carrying the DP-reduced positive-token count
POSITIVE_TOKENS_DATA_KEY = "falcon_h1r_positive_num_tokens"

_SFT_TRAINER_MODULES = ("verl.trainer.sft_trainer", "verl.trainer.sft_trainer_ray")


def _is_patched(fn: Callable) -> bool:
    return getattr(fn, _PATCHED, False)


def _mark(fn: Callable) -> Callable:
    setattr(fn, _PATCHED, True)
    return fn


def _padded(tensor: Any) -> Any:
    return tensor.to_padded_tensor(0) if getattr(tensor, "is_nested", False) else tensor


def count_positive_tokens_hook(original: Callable) -> Callable:
    """Wrap ``forward_backward_batch`` so a training mini-batch carries its global positive-token count."""
    from verl_falcon_plugin.losses.balanced_dp import global_token_count
    from verl_falcon_plugin.losses.grpo import positive_token_mask
    from verl_falcon_plugin.losses.positives import correct_mask_from_data, wants_correctness

    tu = require("verl.utils.tensordict_utils", "the falcon_h1r policy loss")

    @functools.wraps(original)
    def forward_backward_batch(self, data, loss_function, forward_only=False):
        actor_config = getattr(loss_function, "keywords", {}).get("config")  # partial(ppo_loss, config=...)
        if not forward_only and "response_mask" in data.keys() and wants_correctness(actor_config):
            correct = correct_mask_from_data(data, actor_config.policy_loss)
            positive = positive_token_mask(correct, _padded(data["response_mask"]))
            count = global_token_count(positive, self.get_data_parallel_group())
            tu.assign_non_tensor(data, **{POSITIVE_TOKENS_DATA_KEY: count})
        return original(self, data, loss_function, forward_only)

    return _mark(forward_backward_batch)


def positive_tokens_to_policy_loss(original: Callable) -> Callable:
    """Wrap ``ppo_loss`` so the policy loss it calls sees the mini-batch's positive-token count."""
    from verl_falcon_plugin.losses.grpo import global_positive_tokens
    from verl_falcon_plugin.losses.positives import correct_mask_from_data, correct_rows, wants_correctness

    tu = require("verl.utils.tensordict_utils", "the falcon_h1r policy loss")

    @functools.wraps(original)
    def ppo_loss(config, model_output, data, dp_group=None):
        count = tu.get_non_tensor_data(data=data, key=POSITIVE_TOKENS_DATA_KEY, default=None)
        rows = correct_mask_from_data(data, config.policy_loss) if wants_correctness(config) else None
        with global_positive_tokens(count), correct_rows(rows):
            return original(config, model_output, data, dp_group)

    return _mark(ppo_loss)


def sft_loss_for(data_config: Any) -> Callable | None:
    """The SFT loss ``data.balance_dp_token`` asks for, or None to keep verl's."""
    from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS, SFT_EPS_KEY, balanced_sft_loss, validate_eps

    if not bool(data_config.get("balance_dp_token", False)):
        return None
    eps = validate_eps(data_config.get(SFT_EPS_KEY, DEFAULT_EPS), f"data.{SFT_EPS_KEY}")
    return functools.partial(balanced_sft_loss, config=None, eps=eps)


def balance_dp_token_hook(original: Callable) -> Callable:
    """Wrap ``SFTTrainer._build_engine``: after verl builds its client, give it the balanced loss."""

    @functools.wraps(original)
    def _build_engine(self):
        original(self)
        loss_fn = sft_loss_for(self.config.data)
        if loss_fn is not None:
            self.loss_fn = loss_fn
            self.training_client.set_loss_fn(loss_fn=loss_fn)

    return _mark(_build_engine)


def _patch_attr(owner: Any, name: str, wrapper: Callable[[Callable], Callable]) -> bool:
    current = getattr(owner, name)
    if _is_patched(current):
        return False
    setattr(owner, name, wrapper(current))
    return True


def install() -> list[str]:
    """Register ``falcon_h1r`` and apply the patches above; idempotent. Returns what it installed."""
    import verl_falcon_plugin.losses.grpo  # noqa: F401  (registers the policy loss)

    core_algos = require("verl.trainer.ppo.core_algos", "the falcon_h1r policy loss")
    fsdp_impl = require("verl.workers.engine.fsdp.transformer_impl", "the falcon_h1r policy loss")
    losses = require("verl.workers.utils.losses", "the falcon_h1r policy loss")
    engine_workers = require("verl.workers.engine_workers", "the falcon_h1r policy loss")

    if "falcon_h1r" not in core_algos.POLICY_LOSS_REGISTRY:
        raise RuntimeError("policy loss 'falcon_h1r' did not register in verl's POLICY_LOSS_REGISTRY")
    installed = ["policy loss 'falcon_h1r' (verl register_policy_loss)"]

    _patch_attr(fsdp_impl.FSDPEngine, "forward_backward_batch", count_positive_tokens_hook)
    installed.append("FSDPEngine.forward_backward_batch: DP-global positive-token count for falcon_h1r")

    wrapped_ppo_loss = (
        losses.ppo_loss if _is_patched(losses.ppo_loss) else positive_tokens_to_policy_loss(losses.ppo_loss)
    )
    losses.ppo_loss = wrapped_ppo_loss
    engine_workers.ppo_loss = wrapped_ppo_loss
    installed.append("ppo_loss: mini-batch positive-token count to the falcon_h1r loss")

    for module_name in _SFT_TRAINER_MODULES:
        trainer = importlib.import_module(module_name).SFTTrainer
        _patch_attr(trainer, "_build_engine", balance_dp_token_hook)
        installed.append(f"{module_name}.SFTTrainer: data.balance_dp_token=True -> balanced DP token loss with eps")
    return installed
