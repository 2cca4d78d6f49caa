"""What verl's SFT trainer needs on the cpu platform, as Hydra overrides ``run_sft`` adds.

verl's SFT config has no plugin group, so ``run_sft`` adds these overrides itself under
``VERL_PLATFORM=cpu``, before the user's: a key the user sets is left alone.

* ``trainer.device=cpu``: verl's default ``cuda`` sends every batch to ``.to("cuda")`` in
  ``fit`` (``verl/trainer/sft_trainer.py:279-296``); ``auto_set_device`` never rewrites it
  to ``cpu`` (``verl/utils/device.py:160``).
* ``engine.strategy=fsdp2``: FSDP1's ``sync_module_states`` fails on CPU
  (``workers/engine/fsdp/transformer_impl.py:441-444``).
* ``model.override_config.attn_implementation=sdpa``: verl defaults to flash-attention 2
  (``workers/config/model.py:185``).
* ``data.num_workers=0``: verl's 8 dataloader workers each copy the dataset.
"""

from __future__ import annotations

from typing import Sequence

CPU_SFT_OVERRIDES: tuple[tuple[str, str], ...] = (
    ("trainer.device", "trainer.device=cpu"),
    ("engine.strategy", "engine.strategy=fsdp2"),
    ("model.override_config.attn_implementation", "++model.override_config.attn_implementation=sdpa"),
    ("data.num_workers", "data.num_workers=0"),
)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def with_cpu_overrides(args: Sequence[str]) -> list[str]:
    """``args`` (Hydra overrides) preceded by the CPU ones whose key the user did not set."""
    given = {_key(arg) for arg in args if "=" in arg}
    return [override for key, override in CPU_SFT_OVERRIDES if key not in given] + list(args)
