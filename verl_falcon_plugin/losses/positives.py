"""Which responses the falcon_h1r NLL term supervises: those the *task verdict* calls correct.

The paper adds a cross-entropy term "computed exclusively on positive (correct) samples".
Correct is the reward's own verdict, not the sign of the advantage: the router's score is
correctness minus format and language penalties, so in an all-wrong group a well-formed wrong
answer (score 0) beats a malformed one (-1) and gets a positive advantage.

Where verl 0.9.1 carries the verdict to the actor (the reward function returns a dict; every
key but ``score`` is "reward extra info"):

* legacy trainer (``trainer.use_v1=False``): ``batch.non_tensor_batch[field]``, which
  ``DataProto.to_tensordict`` turns into a non-tensor column of the actor's TensorDict;
* v1 trainer, reward computed in the agent loop: ``extra_fields[i]["reward_extra_info"][field]``;
* v1 trainer, colocated reward model: a top-level ``field`` column, as in the legacy trainer.

A row is correct when its value is >= 1 (the router's ``acc`` is 1.0 or 0.0; a partial
score, e.g. a share of passed tests, is not "correct"). Without the field the loss raises at the
first step, naming the field and the fix. ``positive_score_threshold`` switches on, explicitly,
the only fallback: positive when the sequence reward (``rm_scores`` summed over the response)
is >= the threshold, which is right only for a reward whose score is its correctness.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Iterator, Sequence

from verl_falcon_plugin.requires import require

DEFAULT_CORRECTNESS_FIELD = "acc"
SCORE_FIELDS = ("rm_scores", "token_level_scores")  # v1 / legacy name of the token-level reward
EXTRA_FIELDS = "extra_fields"
REWARD_EXTRA_INFO = "reward_extra_info"

#: the correct-row mask of the micro-batch the policy loss is computing, set by the ppo_loss hook
_CORRECT_ROWS: contextvars.ContextVar[Any] = contextvars.ContextVar("falcon_h1r_correct_rows", default=None)


class MissingCorrectnessError(ValueError):
    """The batch carries no task verdict for the falcon_h1r positive-sample NLL term."""


@contextlib.contextmanager
def correct_rows(mask: Any) -> Iterator[None]:
    """Within this block the falcon_h1r loss supervises the rows where ``mask`` (bs,) is True."""
    token = _CORRECT_ROWS.set(mask)
    try:
        yield
    finally:
        _CORRECT_ROWS.reset(token)


def current_correct_rows() -> Any:
    """The mask set by :func:`correct_rows`, or None outside one."""
    return _CORRECT_ROWS.get()


def missing_field_message(field: str, where: str) -> str:
    return (
        f"the falcon_h1r loss supervises only correct responses, but {where} has no correctness field "
        f"{field!r} (looked for a {field!r} column and extra_fields[i]['{REWARD_EXTRA_INFO}'][{field!r}]). "
        f"Fix: return {{'score': ..., {field!r}: 1.0 or 0.0}} from the reward function (the plugin's router "
        f"pkg://verl_falcon_plugin.rewards.router does), or set actor_rollout_ref.actor.policy_loss.positive_field "
        f"to the key your reward returns, or switch on the score fallback explicitly with "
        f"actor_rollout_ref.actor.policy_loss.positive_score_threshold=<score of a correct answer>, "
        f"or set positive_nll_coef=0"
    )


def _column(data: Any, key: str) -> list[Any]:
    torch = require("torch", "the falcon_h1r policy loss")
    values = data[key]
    if torch.is_tensor(values):
        return values.reshape(-1).tolist()
    return list(values)


def verdict_values(data: Any, field: str) -> list[Any] | None:
    """The per-row value of ``field`` in verl's actor TensorDict, or None when no row carries it."""
    keys = set(data.keys())
    if field in keys:
        return _column(data, field)
    if EXTRA_FIELDS in keys:
        values = []
        for extra in _column(data, EXTRA_FIELDS):
            info = extra.get(REWARD_EXTRA_INFO) if isinstance(extra, dict) else None
            values.append(info.get(field) if isinstance(info, dict) else None)
        if any(v is not None for v in values):
            return values
    return None


def correct_mask_from_values(values: Sequence[Any], field: str) -> Any:
    """(bs,) bool: value >= 1. A missing or non-numeric value is an error naming the row, never a silent False."""
    torch = require("torch", "the falcon_h1r policy loss")
    flags = []
    for row, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise MissingCorrectnessError(
                f"row {row} of the batch has {field}={value!r}; the falcon_h1r loss needs a number "
                f"(1 = correct) for every response: {missing_field_message(field, 'that row')}"
            )
        flags.append(number >= 1.0)
    return torch.tensor(flags, dtype=torch.bool)


def sequence_scores(data: Any) -> Any:
    """(bs,) the sequence reward: the token-level reward summed over each response."""
    for key in SCORE_FIELDS:
        if key in data.keys():
            scores = data[key]
            if getattr(scores, "is_nested", False):
                scores = scores.to_padded_tensor(0.0)
            return scores.sum(dim=-1)
    raise MissingCorrectnessError(
        f"positive_score_threshold is set but the batch has none of {SCORE_FIELDS} to threshold"
    )


def correct_mask_from_data(data: Any, policy_loss: Any) -> Any:
    """(bs,) bool mask of correct responses in verl's actor TensorDict, per the loss's settings."""
    threshold = policy_loss.get("positive_score_threshold", None)
    if threshold is not None:
        return sequence_scores(data) >= float(threshold)
    field = policy_loss.get("positive_field", None) or DEFAULT_CORRECTNESS_FIELD
    values = verdict_values(data, field)
    if values is None:
        raise MissingCorrectnessError(missing_field_message(field, "the training batch"))
    return correct_mask_from_values(values, field)


def wants_correctness(actor_config: Any) -> bool:
    """True when ``actor_config`` selects the falcon_h1r loss with a non-zero NLL term."""
    policy_loss = getattr(actor_config, "policy_loss", None)
    if policy_loss is None or policy_loss.get("loss_mode", None) != "falcon_h1r":
        return False
    return float(policy_loss.get("positive_nll_coef", 0.0) or 0.0) > 0.0
