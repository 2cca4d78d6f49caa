"""Balanced data-parallel token loss (Falcon-H1R, Sec. 2): every token of the global batch weighs the same.

Per data-parallel rank r of R (paper's formula)::

    L_r = sum_i l_i m_i / (eps + sum_{r'} sum_i m_i^(r')) * R

The gradient all-reduce *averages* over ranks, so the R cancels and the update is
the token mean over the union of all ranks' tokens, whatever their lengths.

What verl 0.9.1 already does (proved by ``tests/losses/test_balanced_dp.py``):
``FSDPEngine.forward_backward_batch`` all-reduces the loss-mask token count of
the whole mini-batch over the *DP* group (Ulysses SP replicas hold the same
tokens and are not in that group, the fix of verl PR 3691) before splitting it
into micro-batches, and ``sft_loss`` / ``agg_loss(token-mean)`` divide by it and
multiply by ``dp_size``. Ulysses' ``Gather`` scales its gradient by the SP size,
which cancels FSDP's average over the SP replicas. That is exactly the formula
with eps = 0.

What is missing: eps. When the whole global mini-batch has no loss token (all
samples right-trimmed to their prompt, or every response rejected by rollout
rejection sampling) verl computes 0/0 and the NaN gradient poisons the step.
This module adds eps (default :data:`DEFAULT_EPS`) and the SFT loss that honours
``data.balance_dp_token``.
"""

from __future__ import annotations

from typing import Any

from verl_falcon_plugin.requires import require

#: eps in the denominator. Token counts are integers >= 1 whenever any token is
#: valid, and 1e-8 is below float32 resolution (1.2e-7 relative), so it changes
#: nothing then; with zero valid tokens it turns 0/0 into 0 (no update, no NaN).
DEFAULT_EPS: float = 1e-8

#: SFT config key (under ``data``) that sets eps; the switch is ``data.balance_dp_token``.
SFT_EPS_KEY = "balance_dp_token_eps"


def validate_eps(eps: float, field: str = "eps") -> float:
    """Return ``eps`` as a float, or raise naming ``field`` when it is not a finite number >= 0."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{field} must be a number >= 0 (e.g. {DEFAULT_EPS}), got {eps!r}") from err
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(f"{field} must be a finite number >= 0 (e.g. {DEFAULT_EPS}), got {eps!r}")
    return value


def global_token_count(loss_mask: Any, dp_group: Any = None) -> int:
    """Number of valid tokens summed over the data-parallel group (not the SP group, not the world).

    Ulysses SP replicas of a DP rank hold the same tokens; reducing over the
    world would count them ``sp_size`` times (the bug verl PR 3691 fixed).
    """
    torch = require("torch", "the balanced DP token loss")
    mask = loss_mask.values() if getattr(loss_mask, "is_nested", False) else loss_mask
    count = mask.bool().sum().to(torch.int64).reshape(1)
    dist = torch.distributed
    if dist.is_initialized():
        count = count.to(_collective_device(dist.get_backend(dp_group)))
        dist.all_reduce(count, op=dist.ReduceOp.SUM, group=dp_group)
    return int(count.item())


def _collective_device(backend: str) -> Any:
    """NCCL/HCCL reduce device tensors only; gloo reduces CPU tensors."""
    torch = require("torch", "the balanced DP token loss")
    if backend == "gloo":
        return torch.device("cpu")
    device = require("verl.utils.device", "the balanced DP token loss")
    return torch.device(device.get_device_name(), device.get_device_id())


def balanced_token_mean(
    loss_mat: Any,
    loss_mask: Any,
    *,
    dp_size: int,
    global_num_tokens: float,
    eps: float = DEFAULT_EPS,
) -> Any:
    """``sum(loss * mask) / (eps + global_num_tokens) * dp_size`` for one micro-batch of one DP rank."""
    torch = require("torch", "the balanced DP token loss")
    if dp_size < 1:
        raise ValueError(f"dp_size must be >= 1, got {dp_size}")
    masked = torch.where(loss_mask.bool(), loss_mat, torch.zeros_like(loss_mat))
    return masked.sum() / (eps + global_num_tokens) * dp_size


def balanced_sft_loss(config: Any, model_output: Any, data: Any, dp_group: Any = None, *, eps: float = DEFAULT_EPS):
    """verl's ``sft_loss`` with eps in the global token count: the loss of ``data.balance_dp_token=True``.

    Delegates to verl's own ``sft_loss`` (same masking, same shift, same
    ``dp_size`` factor) with the engine's DP-reduced ``batch_num_tokens`` raised
    by eps, so the two agree bit for bit whenever any token is valid.
    """
    losses = require("verl.workers.utils.losses", "the balanced DP SFT loss")
    tu = require("verl.utils.tensordict_utils", "the balanced DP SFT loss")
    if "batch_num_tokens" not in data.keys():
        raise KeyError(
            "balanced_sft_loss needs data['batch_num_tokens'] (the DP-reduced token count that verl's "
            "FSDPEngine.forward_backward_batch assigns); call it through the engine"
        )
    num_tokens = data["batch_num_tokens"]
    tu.assign_non_tensor(data, batch_num_tokens=num_tokens + eps)
    try:
        return losses.sft_loss(config, model_output, data, dp_group)
    finally:
        tu.assign_non_tensor(data, batch_num_tokens=num_tokens)
