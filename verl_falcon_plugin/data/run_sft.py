"""``python -m verl_falcon_plugin.data.run_sft [verl sft_trainer overrides]``: verl's SFT trainer with
the data hooks installed first (streaming dataloader, periodic ``empty_cache``).

It runs verl's own Hydra ``main`` from ``verl.trainer.sft_trainer`` (same config, same
overrides); the only difference from ``python -m verl.trainer.sft_trainer`` is that the
trainer class is the patched module one rather than an unpatched copy in ``__main__``.
"""

from __future__ import annotations

from verl_falcon_plugin.data.sft_trainer_hooks import install
from verl_falcon_plugin.requires import require


def main() -> None:
    install()
    require("verl.trainer.sft_trainer", "verl's SFT trainer").main()


if __name__ == "__main__":
    main()
