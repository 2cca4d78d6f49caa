"""The falcon_h1r policy loss against verl's vanilla PPO loss and the plain positive-sample NLL.

Reference: verl's ``compute_policy_loss_vanilla`` (same clip settings, same global
batch info as the engine passes) and an NLL written here with plain autograd.
float64; tolerance 1e-12 relative for the extra gradient, exact equality at coef 0.
Positives are the rows the reward calls correct (``acc``), not the positive-advantage ones:
the end-to-end tests at the bottom go through verl's own ``FSDPEngine.forward_backward_batch``
and ``ppo_loss`` with the router's real outputs.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, get_policy_loss_fn  # noqa: E402

from verl_falcon_plugin.losses.dp_harness import actor_config  # noqa: E402
from verl_falcon_plugin.losses.grpo import (  # noqa: E402
    FalconH1RPolicyLossConfig,
    compute_policy_loss_falcon_h1r,
    global_positive_tokens,
)
from verl_falcon_plugin.losses.positives import MissingCorrectnessError, correct_rows  # noqa: E402

TOL = 1e-12
DP_SIZE, GLOBAL_TOKENS, GLOBAL_POSITIVE = 2, 40, 17  # as the engine would pass for the whole mini-batch
# one advantage per response (GRPO): positive, negative, zero (all-correct group), positive, negative
ADVANTAGES = [1.2, -0.8, 0.0, 0.5, -1.5]
# the reward's verdict: row 2 is correct in an all-correct group (advantage 0), row 3 is a well-formed
# wrong answer with a positive advantage (its group-mates were malformed)
CORRECT = [True, False, True, False, False]
LENGTHS = [6, 4, 7, 3, 5]


def batch(seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    width = max(LENGTHS)
    mask = torch.zeros(len(LENGTHS), width, dtype=torch.bool)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = True
    adv = torch.tensor(ADVANTAGES, dtype=torch.float64).unsqueeze(-1) * mask
    log_prob = (-torch.rand(len(LENGTHS), width, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    old = log_prob.detach() + 0.4 * torch.randn(log_prob.shape, generator=gen, dtype=torch.float64)
    is_weights = torch.rand(log_prob.shape, generator=gen, dtype=torch.float64) * 2
    return {
        "old_log_prob": old,
        "log_prob": log_prob,
        "advantages": adv,
        "response_mask": mask,
        "rollout_is_weights": is_weights,
    }


def engine_config(coef: float, eps: float | None = None):
    config = actor_config(coef, eps)
    config.global_batch_info.update(
        dp_size=DP_SIZE, batch_num_tokens=GLOBAL_TOKENS, global_batch_size=10, loss_scale_factor=None
    )
    return config


def run(fn, config, b: dict):
    b["log_prob"].grad = None
    with global_positive_tokens(GLOBAL_POSITIVE), correct_rows(torch.tensor(CORRECT)):
        loss, metrics = fn(loss_agg_mode="token-mean", config=config, **b)
    loss.backward()
    return loss.detach(), b["log_prob"].grad.clone(), metrics


def test_registered_in_verls_policy_loss_registry() -> None:
    assert get_policy_loss_fn("falcon_h1r") is compute_policy_loss_falcon_h1r


def test_coef_zero_is_verls_vanilla_loss_exactly() -> None:
    b = batch()
    loss, grad, _ = run(compute_policy_loss_falcon_h1r, engine_config(0.0), b)
    ref_loss, ref_grad, _ = run(compute_policy_loss_vanilla, engine_config(0.0), b)
    assert torch.equal(loss, ref_loss) and torch.equal(grad, ref_grad)


def test_extra_gradient_is_the_positive_samples_nll_gradient_only() -> None:
    coef = 0.3
    b = batch()
    _, grad, _ = run(compute_policy_loss_falcon_h1r, engine_config(coef, eps=0.0), b)  # eps=0: exact comparison
    _, vanilla_grad, _ = run(compute_policy_loss_vanilla, engine_config(coef), b)
    extra = grad - vanilla_grad

    # reference: coef * sum over correct responses' tokens of -log p, / global positive tokens * dp_size
    positive_rows = torch.tensor(CORRECT)
    log_prob = b["log_prob"].detach().clone().requires_grad_()
    positive = b["response_mask"] & positive_rows.unsqueeze(-1)
    (coef * (-log_prob)[positive].sum() / GLOBAL_POSITIVE * DP_SIZE).backward()
    scale = float(log_prob.grad.abs().max())
    assert float((extra - log_prob.grad).abs().max()) / scale <= TOL

    # wrong responses receive no extra gradient (row 3 although its advantage is positive)
    assert torch.count_nonzero(extra[~positive_rows]) == 0
    assert torch.count_nonzero(b["response_mask"][~positive_rows]) > 0
    assert torch.count_nonzero(extra[positive]) == int(positive.sum())


def test_all_metrics_present() -> None:
    _, _, metrics = run(compute_policy_loss_falcon_h1r, engine_config(0.1), batch())
    expected = {
        "actor/pg_clipfrac",
        "actor/ppo_kl",
        "actor/pg_clipfrac_lower",
        "actor/falcon_h1r/pg_clip_loss",
        "actor/falcon_h1r/positive_nll",
        "actor/falcon_h1r/positive_nll_loss",
        "actor/falcon_h1r/positive_nll_coef",
        "actor/falcon_h1r/positive_token_frac",
        "actor/falcon_h1r/positive_seq_frac",
    }
    assert expected <= set(metrics)
    assert metrics["actor/falcon_h1r/positive_seq_frac"] == pytest.approx(2 / 5)
    assert metrics["actor/falcon_h1r/positive_token_frac"] == pytest.approx(13 / sum(LENGTHS))


def test_inside_the_engine_without_the_count_is_an_error_not_a_local_mean() -> None:
    b = batch()
    with pytest.raises(ValueError, match="positive-token count"), correct_rows(torch.tensor(CORRECT)):
        compute_policy_loss_falcon_h1r(loss_agg_mode="token-mean", config=engine_config(0.1), **b)


def test_without_a_verdict_the_loss_raises_instead_of_guessing_from_advantages() -> None:
    with pytest.raises(MissingCorrectnessError, match="correctness mask"), global_positive_tokens(GLOBAL_POSITIVE):
        compute_policy_loss_falcon_h1r(loss_agg_mode="token-mean", config=engine_config(0.1), **batch())


def test_no_positive_token_anywhere_gives_zero_nll_not_nan() -> None:
    b = batch()
    b["log_prob"].grad = None
    with global_positive_tokens(0), correct_rows(torch.zeros(len(LENGTHS), dtype=torch.bool)):
        loss, metrics = compute_policy_loss_falcon_h1r(loss_agg_mode="token-mean", config=engine_config(1.0), **b)
    loss.backward()
    assert torch.isfinite(b["log_prob"].grad).all()
    assert metrics["actor/falcon_h1r/positive_nll_loss"] == 0.0


@pytest.mark.parametrize(
    "field, value", [("positive_nll_coef", -0.1), ("positive_nll_eps", -1.0), ("positive_field", "")]
)
def test_bad_config_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"actor.policy_loss.{field}"):
        FalconH1RPolicyLossConfig(**{field: value})


def test_a_row_without_a_verdict_is_an_error_naming_the_row_not_a_silent_wrong() -> None:
    from verl_falcon_plugin.losses.positives import correct_mask_from_values

    assert correct_mask_from_values([1.0, 0.0, True, 0.5], "acc").tolist() == [True, False, True, False]
    with pytest.raises(MissingCorrectnessError, match=r"row 1 .*acc=None"):
        correct_mask_from_values([1.0, None], "acc")


def test_the_verdict_is_read_where_verl_puts_it() -> None:
    from tensordict import NonTensorData, NonTensorStack, TensorDict

    from verl_falcon_plugin.losses.positives import correct_mask_from_data

    policy_loss = FalconH1RPolicyLossConfig(positive_nll_coef=0.1)
    legacy = TensorDict({"acc": torch.tensor([0.0, 1.0])}, batch_size=[2])
    infos = [{"reward_extra_info": {"acc": a}} for a in (1.0, 0.0)]
    v1 = TensorDict({"extra_fields": NonTensorStack(*[NonTensorData(i) for i in infos])}, batch_size=[2])
    assert correct_mask_from_data(legacy, policy_loss).tolist() == [False, True]
    assert correct_mask_from_data(v1, policy_loss).tolist() == [True, False]
    other = FalconH1RPolicyLossConfig(positive_nll_coef=0.1, positive_field="solved")
    with pytest.raises(MissingCorrectnessError, match="'solved'.*positive_field"):
        correct_mask_from_data(legacy, other)
    # the explicit fallback: the sequence reward summed over the response, thresholded
    scores = TensorDict({"rm_scores": torch.tensor([[0.0, 1.0], [0.0, -1.0]])}, batch_size=[2])
    fallback = FalconH1RPolicyLossConfig(positive_nll_coef=0.1, positive_score_threshold=1.0)
    assert correct_mask_from_data(scores, fallback).tolist() == [True, False]
    with pytest.raises(MissingCorrectnessError, match="rm_scores"):
        correct_mask_from_data(legacy, fallback)
