"""What ``VERL_PLATFORM=cpu`` installs, after the platform itself (see ``activation.register``).

Same format as ``activation.INSTALLERS``: (what, "module:function", trigger modules).
"""

from __future__ import annotations

_ENGINE = "verl.workers.engine.fsdp.transformer_impl"

CPU_INSTALLERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("FSDP engines for device cpu", "verl_falcon_plugin.cpu.engines:register", (_ENGINE,)),
    ("gloo process groups", "verl_falcon_plugin.cpu.gloo:install", ("verl.utils.distributed",)),
    (
        "gloo in verl's by-name imports",
        "verl_falcon_plugin.cpu.gloo:rebind",
        ("verl.workers.engine_workers", "verl.checkpoint_engine.base"),
    ),
    (
        "HF CPU rollout adapter",
        "verl_falcon_plugin.cpu.rollout.registry:register_adapter",
        ("verl.workers.rollout.base",),
    ),
    (
        "HF CPU rollout replica",
        "verl_falcon_plugin.cpu.rollout.registry:register_replica",
        ("verl.workers.rollout.replica",),
    ),
    ("Liger on CPU", "liger_patches.cpu:guard_use_liger_on_cpu", ("liger_kernel.transformers.monkey_patch",)),
)
