"""Builders shared by the tests, the benchmarks and the preflight (tiny models, never downloaded)."""

from verl_falcon_plugin.testing.tiny_falcon_h1 import (
    GROUPED_GEOMETRY,
    REALISTIC_GEOMETRY,
    VLLM_SERVABLE_GEOMETRY,
    random_mup_multipliers,
    tiny_falcon_h1,
    tiny_falcon_h1_config,
)

__all__ = [
    "GROUPED_GEOMETRY",
    "REALISTIC_GEOMETRY",
    "VLLM_SERVABLE_GEOMETRY",
    "random_mup_multipliers",
    "tiny_falcon_h1",
    "tiny_falcon_h1_config",
]
