"""The Falcon-H1R GRPO policy loss (Sec. 3.2): clipped PPO with clip-high + NLL on positive samples.

    loss = PPO_clip(eps_low=0.2, eps_high=0.28)            (verl's vanilla loss, token-mean)
         + positive_nll_coef * NLL(positive samples)       (its own global token normalisation)

* The clipped term *is* verl's ``compute_policy_loss_vanilla`` (same clip ratios,
  dual clip, TIS weights, ``agg_loss`` with the engine's global batch info): we
  call it rather than re-implement it.
* Positive sample: a response the *task verdict* calls correct (the reward's ``acc``, see
  :mod:`verl_falcon_plugin.losses.positives`), as the paper says: "computed exclusively on
  positive (correct) samples". Not the sign of the advantage: with the router's score
  (correctness minus format penalties) a well-formed wrong answer in an all-wrong group has a
  positive advantage. Correct responses of all-correct groups are supervised too (the online
  sampler drops such groups before training anyway). Without a correctness field the loss
  raises at the first step; ``positive_score_threshold`` is the explicit fallback.
* The NLL term is a token mean over the positive tokens of the *global*
  mini-batch: ``sum_pos(-log p) / (eps + N_pos) * dp_size``, where ``N_pos`` is
  counted over the whole mini-batch and the DP group by the hook in
  :mod:`verl_falcon_plugin.losses.verl_hook` (so micro-batches and ranks share
  one denominator, as for the balanced DP token loss). It is not weighted by the
  TIS weights: those correct the policy-gradient estimator, the NLL is plain
  supervision on sampled tokens.
* The coefficient is ``actor.policy_loss.positive_nll_coef``; the paper does not
  give it; our recipe default 0.1 is VAPO's (Seed et al., 2025, the paper's cited
  source for this term).
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Iterator, Optional

from verl_falcon_plugin.losses.balanced_dp import DEFAULT_EPS, balanced_token_mean, validate_eps
from verl_falcon_plugin.losses.positives import (
    DEFAULT_CORRECTNESS_FIELD,
    MissingCorrectnessError,
    current_correct_rows,
)
from verl_falcon_plugin.requires import require

_core_algos = require("verl.trainer.ppo.core_algos", "the falcon_h1r policy loss")
_actor_config = require("verl.workers.config", "the falcon_h1r policy loss")

LOSS_MODE = "falcon_h1r"

#: The DP-reduced positive-token count of the mini-batch being trained on. A context variable, not a
#: ``global_batch_info`` key: verl splats that dict into ``agg_loss(**...)``, which rejects unknown keys.
_GLOBAL_POSITIVE_TOKENS: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "falcon_h1r_global_positive_tokens", default=None
)


@contextlib.contextmanager
def global_positive_tokens(count: int | None) -> Iterator[None]:
    """Within this block the falcon_h1r loss normalises its NLL term by ``count`` (None: no engine count)."""
    token = _GLOBAL_POSITIVE_TOKENS.set(count)
    try:
        yield
    finally:
        _GLOBAL_POSITIVE_TOKENS.reset(token)


METRIC_PREFIX = "actor/falcon_h1r"


@dataclass
class FalconH1RPolicyLossConfig(_actor_config.PolicyLossConfig):
    """verl's ``PolicyLossConfig`` plus the positive-sample NLL term.

    Selected in YAML by ``actor.policy_loss._target_`` so that verl's own config
    instantiation accepts the extra keys.

    Args:
        positive_nll_coef: weight of the NLL on positive samples (0 disables it: the loss is then
            verl's vanilla PPO loss).
        positive_nll_eps: eps of the NLL term's global token normalisation.
        positive_field: the reward-extra-info key holding the task verdict (1 = correct); the
            plugin's router returns ``acc``.
        positive_score_threshold: None (default) or the explicit fallback: a response is positive
            when its sequence reward is >= this (only right for a reward that *is* correctness).
    """

    loss_mode: str = LOSS_MODE
    positive_nll_coef: float = 0.0
    positive_nll_eps: float = DEFAULT_EPS
    positive_field: str = DEFAULT_CORRECTNESS_FIELD
    positive_score_threshold: Optional[float] = None

    def __post_init__(self) -> None:
        parent_post_init = getattr(super(), "__post_init__", None)
        if parent_post_init is not None:
            parent_post_init()
        if not self.positive_nll_coef >= 0.0:
            raise ValueError(
                f"actor.policy_loss.positive_nll_coef must be >= 0 (0 turns the positive-sample NLL off), "
                f"got {self.positive_nll_coef!r}"
            )
        validate_eps(self.positive_nll_eps, "actor.policy_loss.positive_nll_eps")
        if not (isinstance(self.positive_field, str) and self.positive_field):
            raise ValueError(
                "actor.policy_loss.positive_field must name the reward's correctness key (e.g. 'acc'), "
                f"got {self.positive_field!r}"
            )


def positive_token_mask(correct: Any, response_mask: Any) -> Any:
    """(bs, T) bool: the valid tokens of the correct responses (``correct`` is (bs,) bool)."""
    return response_mask.bool() & correct.to(response_mask.device).bool().unsqueeze(-1)


def _correct_rows_or_raise(response_mask: Any) -> Any:
    correct = current_correct_rows()
    if correct is None:
        raise MissingCorrectnessError(
            "the falcon_h1r loss got no correctness mask: inside verl it comes from the reward's 'acc' through "
            "verl_falcon_plugin.losses.verl_hook.install() (run by `import verl` with the plugin installed; check "
            "`falcon-h1r check losses`); called directly, wrap the call in "
            "verl_falcon_plugin.losses.positives.correct_rows(mask)"
        )
    if correct.shape[0] != response_mask.shape[0]:
        raise ValueError(f"correctness mask has {correct.shape[0]} rows, the batch {response_mask.shape[0]}")
    return correct


def _policy_loss_settings(config: Any) -> tuple[float, float]:
    policy_loss = config.policy_loss
    coef = policy_loss.get("positive_nll_coef", None)
    if coef is None:
        raise ValueError(
            "loss_mode=falcon_h1r needs actor.policy_loss.positive_nll_coef; set "
            "actor_rollout_ref.actor.policy_loss._target_=verl_falcon_plugin.losses.grpo.FalconH1RPolicyLossConfig "
            "(the +plugin=falcon_h1r config does)"
        )
    eps = validate_eps(policy_loss.get("positive_nll_eps", DEFAULT_EPS), "actor.policy_loss.positive_nll_eps")
    return float(coef), eps


def _global_positive_tokens(config: Any, local_positive: Any) -> tuple[int, float]:
    """(dp_size, DP-reduced positive-token count of the mini-batch)."""
    info = config.global_batch_info
    dp_size = int(info.get("dp_size", 1) or 1)
    count = _GLOBAL_POSITIVE_TOKENS.get()
    if count is None:
        if dp_size > 1 or info.get("batch_num_tokens") is not None:
            raise ValueError(
                "the falcon_h1r loss runs inside verl's engine but got no mini-batch positive-token count; it is "
                "provided by verl_falcon_plugin.losses.verl_hook.install(), which `import verl` runs when the "
                "plugin is installed (check `falcon-h1r check losses`)"
            )
        count = local_positive.sum().item()  # single process, no engine: the local batch is the global batch
    return dp_size, float(count)


@_core_algos.register_policy_loss(LOSS_MODE)
def compute_policy_loss_falcon_h1r(
    old_log_prob: Any,
    log_prob: Any,
    advantages: Any,
    response_mask: Any,
    loss_agg_mode: str = "token-mean",
    config: Optional[Any] = None,
    rollout_is_weights: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """verl policy loss ``falcon_h1r``: vanilla clipped PPO + ``positive_nll_coef`` * positive-sample NLL."""
    if config is None:
        raise ValueError("the falcon_h1r policy loss needs the actor config (verl passes it as `config`)")
    coef, eps = _policy_loss_settings(config)
    pg_loss, metrics = _core_algos.compute_policy_loss_vanilla(
        old_log_prob=old_log_prob,
        log_prob=log_prob,
        advantages=advantages,
        response_mask=response_mask,
        loss_agg_mode=loss_agg_mode,
        config=config,
        rollout_is_weights=rollout_is_weights,
    )
    if coef == 0.0:  # the NLL term is off: exactly verl's vanilla loss, no verdict needed
        metrics[f"{METRIC_PREFIX}/pg_clip_loss"] = pg_loss.detach().item()
        metrics[f"{METRIC_PREFIX}/positive_nll_coef"] = coef
        return pg_loss, metrics
    correct = _correct_rows_or_raise(response_mask)
    positive = positive_token_mask(correct, response_mask)
    dp_size, global_positive = _global_positive_tokens(config, positive)
    if global_positive > 0:
        nll = balanced_token_mean(-log_prob, positive, dp_size=dp_size, global_num_tokens=global_positive, eps=eps)
    else:  # no correct response in the whole mini-batch: exactly 0 (not 0/eps, nor 0/0 at eps=0)
        nll = (log_prob * 0.0).sum()
    loss = pg_loss + coef * nll

    # pg_clip_loss / positive_nll_loss are this micro-batch's shares of the globally normalised loss;
    # verl MEAN-aggregates policy-loss metrics over micro-batches, so with k micro-batches the logged
    # value is the mini-batch total / k. positive_nll and the fractions are plain micro-batch means.
    num_valid = max(int(response_mask.bool().sum().item()), 1)
    num_positive = int(positive.sum().item())
    local_nll = (-log_prob.detach())[positive].mean().item() if num_positive else 0.0
    metrics.update(
        {
            f"{METRIC_PREFIX}/pg_clip_loss": pg_loss.detach().item(),
            f"{METRIC_PREFIX}/positive_nll": local_nll,
            f"{METRIC_PREFIX}/positive_nll_loss": (coef * nll).detach().item(),
            f"{METRIC_PREFIX}/positive_nll_coef": coef,
            f"{METRIC_PREFIX}/positive_token_frac": num_positive / num_valid,
            f"{METRIC_PREFIX}/positive_seq_frac": correct.float().mean().item(),
        }
    )
    return loss, metrics
