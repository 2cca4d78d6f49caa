"""Preflight: the balanced DP token loss and the falcon_h1r policy loss, in this environment's verl."""

from __future__ import annotations

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available

#: relative gradient error allowed: eps / N with eps = 1e-8, float64 otherwise exact
BALANCED_TOLERANCE = 1e-8
GRPO_TOLERANCE = 1e-12


def _relative_error(grads: list, reference: list) -> float:
    scale = max(float(r.abs().max()) for r in reference)
    return max(float((g - r).abs().max()) for g, r in zip(grads, reference)) / scale


@register_check("losses.balanced_dp", "losses")
def balanced_dp() -> CheckResult:
    """2 gloo ranks x 2 micro-batches through verl's FSDPEngine.forward_backward_batch vs one process."""
    if not (is_available("verl") and is_available("torch")):
        return CheckResult.skipped("verl/torch not installed (pip install 'verl-falcon-plugin[verl]')")
    from verl_falcon_plugin.losses import dp_harness as h

    scenario = h.Scenario("preflight_dp2", dp=2, micro_batches=2)
    runs = h.run_scenarios([scenario])[scenario.name]
    reference = h.reference_sft_grads(scenario)
    error = _relative_error(runs["balanced"]["grads"], reference)
    naive = _relative_error(runs["naive"]["grads"], reference)
    return CheckResult.within(
        error, BALANCED_TOLERANCE, f"DP=2, 2 micro-batches, ragged: balanced vs global token mean (naive: {naive:.2g})"
    )


@register_check("losses.grpo", "losses")
def grpo() -> CheckResult:
    """falcon_h1r = verl vanilla at coef 0; its extra gradient = positive-sample NLL gradient."""
    if not (is_available("verl") and is_available("torch")):
        return CheckResult.skipped("verl/torch not installed (pip install 'verl-falcon-plugin[verl]')")
    import torch
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, get_policy_loss_fn

    from verl_falcon_plugin.losses.dp_harness import actor_config
    from verl_falcon_plugin.losses.grpo import compute_policy_loss_falcon_h1r, global_positive_tokens
    from verl_falcon_plugin.losses.positives import correct_rows

    if get_policy_loss_fn("falcon_h1r") is not compute_policy_loss_falcon_h1r:
        return CheckResult.failed("verl's policy-loss registry has no (or another) 'falcon_h1r'")
    gen = torch.Generator().manual_seed(0)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 4:] = False
    adv = torch.tensor([[1.0], [-1.0], [0.0], [0.5]], dtype=torch.float64) * mask
    old = -torch.rand(4, 6, generator=gen, dtype=torch.float64)
    positive = int(mask[[0, 3]].sum())

    def grad(fn, coef: float):
        log_prob = (old + 0.3 * torch.randn(4, 6, generator=torch.Generator().manual_seed(1))).requires_grad_()
        config = actor_config(coef, eps=0.0)
        with global_positive_tokens(positive), correct_rows(torch.tensor([True, False, False, True])):
            loss, _ = fn(
                old_log_prob=old,
                log_prob=log_prob,
                advantages=adv,
                response_mask=mask,
                loss_agg_mode="token-mean",
                config=config,
            )
        loss.backward()
        return log_prob.grad

    vanilla = grad(compute_policy_loss_vanilla, 0.0)
    if not torch.equal(grad(compute_policy_loss_falcon_h1r, 0.0), vanilla):
        return CheckResult.failed("coef 0: falcon_h1r gradient differs from verl's vanilla loss")
    extra = grad(compute_policy_loss_falcon_h1r, 0.2) - vanilla
    expected = torch.zeros_like(extra)
    expected[[0, 3]] = -0.2 / positive  # d/dlogp of coef * mean over positive tokens of -log p
    error = float((extra - expected * mask).abs().max()) / (0.2 / positive)
    return CheckResult.within(error, GRPO_TOLERANCE, "coef 0 == verl vanilla; extra grad == positive-sample NLL grad")
