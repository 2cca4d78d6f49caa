"""`+plugin=falcon_h1r` composes a config that verl's own dataclasses accept and that selects our loss.

Composed with verl's real CLI (``main_ppo --cfg job``), then instantiated the way verl's
workers do (``omega_conf_to_dataclass``), and the TIS settings fed to verl's own
rollout-correction function.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def composed() -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "+plugin=falcon_h1r", "--cfg", "job"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


@pytest.mark.slow
def test_actor_config_instantiates_with_the_falcon_h1r_loss(composed: dict) -> None:
    from omegaconf import OmegaConf
    from verl.trainer.ppo.core_algos import get_policy_loss_fn
    from verl.utils.config import omega_conf_to_dataclass

    from verl_falcon_plugin.losses.grpo import FalconH1RPolicyLossConfig, compute_policy_loss_falcon_h1r

    actor = OmegaConf.create(composed["actor_rollout_ref"]["actor"])
    actor.ppo_micro_batch_size_per_gpu = 1  # verl requires one; not a plugin setting
    config = omega_conf_to_dataclass(actor)  # what verl's ActorRolloutRefWorker does
    assert isinstance(config.policy_loss, FalconH1RPolicyLossConfig)
    assert config.policy_loss.loss_mode == "falcon_h1r"
    assert config.policy_loss.positive_nll_coef == 0.1
    assert config.loss_agg_mode == "token-mean"  # the balanced (global) token mean in verl's engine
    assert (config.clip_ratio_low, config.clip_ratio_high) == (0.2, 0.28)
    assert get_policy_loss_fn(config.policy_loss.loss_mode) is compute_policy_loss_falcon_h1r


@pytest.mark.slow
def test_composed_tis_settings_truncate_importance_weights_at_2(composed: dict) -> None:
    from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_rejection_mask

    assert composed["actor_rollout_ref"]["rollout"]["calculate_log_probs"] is True  # TIS needs rollout log-probs
    correction = composed["algorithm"]["rollout_correction"]
    old = torch.tensor([[0.0, -1.0, -2.0, -0.5]])
    rollout = torch.tensor([[-2.0, -1.0, -0.5, -0.5]])  # ratios e^2, 1, e^-1.5, 1
    mask = torch.ones_like(old)
    weights, _, _ = compute_rollout_correction_and_rejection_mask(
        old,
        rollout,
        mask,
        rollout_is=correction["rollout_is"],
        rollout_is_threshold=correction["rollout_is_threshold"],
        rollout_is_batch_normalize=correction["rollout_is_batch_normalize"],
        rollout_rs=correction["rollout_rs"],
        rollout_rs_threshold=correction["rollout_rs_threshold"],
    )
    w = weights.batch["rollout_is_weights"][0]
    assert torch.allclose(w, torch.tensor([2.0, 1.0, torch.exp(torch.tensor(-1.5)).item(), 1.0]), atol=1e-6)
