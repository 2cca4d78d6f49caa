"""``python -m verl_falcon_plugin.data.run_sft [verl sft_trainer overrides]``: verl's SFT trainer with
the data hooks installed first (streaming dataloader, periodic ``empty_cache``).

It runs verl's own Hydra ``main`` from ``verl.trainer.sft_trainer`` (same config, same
overrides); the only difference from ``python -m verl.trainer.sft_trainer`` is that the
trainer class is the patched module one rather than an unpatched copy in ``__main__``.

With ``VERL_PLATFORM=cpu`` (``torchrun --nproc_per_node=N -m verl_falcon_plugin.data.run_sft``
on a machine without a GPU) it also adds the CPU overrides of
:mod:`verl_falcon_plugin.cpu.sft` that the user did not set.
"""

from __future__ import annotations

import sys

from verl_falcon_plugin.activation import cpu_platform_requested
from verl_falcon_plugin.data.sft_trainer_hooks import install
from verl_falcon_plugin.requires import require


def main() -> None:
    if cpu_platform_requested():
        from verl_falcon_plugin.cpu.sft import with_cpu_overrides

        sys.argv[1:] = with_cpu_overrides(sys.argv[1:])
    install()
    require("verl.trainer.sft_trainer", "verl's SFT trainer").main()


if __name__ == "__main__":
    main()
