"""Builders shared by the tests, the benchmarks and the preflight (tiny models, never downloaded)."""

from verl_falcon_plugin.testing.rl_smoke import build_smoke_model_dir, build_smoke_tokenizer, write_rl_parquet
from verl_falcon_plugin.testing.tiny_falcon_h1 import (
    GROUPED_GEOMETRY,
    REALISTIC_GEOMETRY,
    VLLM_SERVABLE_GEOMETRY,
    random_mup_multipliers,
    tiny_falcon_h1,
    tiny_falcon_h1_config,
)
from verl_falcon_plugin.testing.trainer_run import TrainerRun, console_metrics, leftover_processes, run_trainer

__all__ = [
    "TrainerRun",
    "build_smoke_model_dir",
    "build_smoke_tokenizer",
    "console_metrics",
    "leftover_processes",
    "run_trainer",
    "write_rl_parquet",
    "GROUPED_GEOMETRY",
    "REALISTIC_GEOMETRY",
    "VLLM_SERVABLE_GEOMETRY",
    "random_mup_multipliers",
    "tiny_falcon_h1",
    "tiny_falcon_h1_config",
]
