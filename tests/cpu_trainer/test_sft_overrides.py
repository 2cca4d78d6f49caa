"""``run_sft`` on the cpu platform adds verl's CPU settings, never over the user's own."""

from __future__ import annotations

from verl_falcon_plugin.cpu.sft import CPU_SFT_OVERRIDES, with_cpu_overrides


def test_every_cpu_setting_is_added_before_the_users_overrides() -> None:
    args = with_cpu_overrides(["model.path=/m"])
    assert args == [override for _, override in CPU_SFT_OVERRIDES] + ["model.path=/m"]


def test_a_key_the_user_sets_is_left_alone() -> None:
    args = with_cpu_overrides(["engine.strategy=fsdp", "+model.override_config.attn_implementation=eager"])
    assert "engine.strategy=fsdp2" not in args and "engine.strategy=fsdp" in args
    assert not any("attn_implementation=sdpa" in arg for arg in args)
    assert "trainer.device=cpu" in args
