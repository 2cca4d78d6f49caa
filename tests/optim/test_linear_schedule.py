"""optim.lr_scheduler_type=linear in verl's FSDP engine equals transformers' linear schedule with warmup."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

from verl_falcon_plugin.optim.linear_schedule import get_linear_schedule_with_warmup  # noqa: E402

TOTAL, WARMUP_RATIO = 50, 0.04  # the paper's 4% warmup: 2 of 50 steps


def lrs(scheduler, optimizer, steps=TOTAL):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def fresh_optimizer(lr=1e-3):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def verl_config(schedule: str, **extra):
    from verl.utils.config import omega_conf_to_dataclass
    from verl.workers.config.optimizer import FSDPOptimizerConfig

    fields = dict(lr=1e-3, lr_warmup_steps_ratio=WARMUP_RATIO, lr_scheduler_type=schedule, total_training_steps=TOTAL)
    return omega_conf_to_dataclass({"_target_": "verl.workers.config.FSDPOptimizerConfig", **fields, **extra},
                                   FSDPOptimizerConfig)  # fmt: skip


def verl_engine_scheduler(config, optimizer):
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

    return FSDPEngine._build_lr_scheduler(SimpleNamespace(optimizer_config=config, rank=0), optimizer)


def transformers_reference(optimizer, warmup=int(WARMUP_RATIO * TOTAL)):
    from transformers import get_linear_schedule_with_warmup as reference

    return reference(optimizer, num_warmup_steps=warmup, num_training_steps=TOTAL)


def test_verl_engine_builds_the_linear_schedule_equal_to_transformers():
    optimizer = fresh_optimizer()
    ours = lrs(verl_engine_scheduler(verl_config("linear"), optimizer), optimizer)
    reference_optimizer = fresh_optimizer()
    expected = lrs(transformers_reference(reference_optimizer), reference_optimizer)
    assert ours == pytest.approx(expected, rel=0, abs=1e-15)  # same formula: exact up to float rounding
    assert ours[0] == 0.0 and ours[2] == pytest.approx(1e-3) and ours[-1] < 1e-4  # warmup 2 steps, then decays


def test_constant_and_cosine_are_still_verls_and_constant_differs():
    optimizer = fresh_optimizer()
    constant = lrs(verl_engine_scheduler(verl_config("constant"), optimizer), optimizer)
    assert constant[-1] == pytest.approx(1e-3)  # negative control: verl's constant-after-warmup never decays
    reference_optimizer = fresh_optimizer()
    assert constant != pytest.approx(lrs(transformers_reference(reference_optimizer), reference_optimizer))


def test_min_lr_ratio_is_the_floor():
    optimizer = fresh_optimizer()
    scheduled = lrs(verl_engine_scheduler(verl_config("linear", min_lr_ratio=0.1), optimizer), optimizer)
    assert min(scheduled[2:]) == pytest.approx(1e-4 * 1.0, rel=0.2) and min(scheduled[2:]) >= 1e-4 - 1e-12


def test_without_the_hook_verl_rejects_linear():
    from verl.workers.config.optimizer import FSDPOptimizerConfig

    unpatched = FSDPOptimizerConfig.__post_init__.__wrapped__
    config = verl_config("constant")
    config.lr_scheduler_type = "linear"
    with pytest.raises(AssertionError):
        unpatched(config)


def test_bad_min_lr_ratio_names_the_setting():
    with pytest.raises(ValueError, match="optim.min_lr_ratio"):
        get_linear_schedule_with_warmup(fresh_optimizer(), 1, 10, min_lr_ratio=2.0)
