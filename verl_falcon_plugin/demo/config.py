"""Sizes of the demo: ``full`` (``make demo``, about 10 minutes on 2 cores) and ``quick`` (CI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 0
    layers: int = 2
    # task
    sft_rows: int = 900
    rl_problems: int = 48
    eval_problems: int = 48
    # SFT (paper: linear schedule, 4% warmup, wd 0.01, clip 1.0, Ulysses 2; lr and batch are the demo's)
    sft_samples: int = 3840
    sft_batch: int = 32
    sft_lr: float = 3e-3
    max_length: int = 320
    # RL data (paper: 8 rollouts, T=0.6, top-p 0.95)
    rollouts_n: int = 8
    max_new_tokens: int = 48
    # GRPO (paper G=16, batch 128: scaled down)
    grpo_steps: int = 8
    grpo_batch: int = 4
    grpo_n: int = 8
    grpo_lr: float = 5e-4
    # evaluation (paper: T=0.6, top-p 0.95; k per benchmark)
    eval_k: int = 4
    # DeepConf (paper: K=512, N_init=16, eta 10%, window 2048: scaled to the tiny traces)
    deepconf_problems: int = 8
    deepconf_budget: int = 32
    deepconf_n_init: int = 8
    deepconf_window: int = 8

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FULL = DemoConfig()
QUICK = DemoConfig(
    sft_rows=300, rl_problems=16, eval_problems=16, sft_samples=384, sft_batch=32, grpo_steps=2, grpo_batch=4,
    grpo_n=4, eval_k=2, deepconf_problems=2, deepconf_budget=16, deepconf_n_init=4,
)  # fmt: skip
PRESETS = {"full": FULL, "quick": QUICK}
