"""Data pipelines of Falcon-H1R: the streaming weighted SFT mixture for verl's SFT trainer and
the RL problem preparation (dedup against SFT, rollouts, difficulty filter).

Nothing here imports torch, verl or ``datasets`` at import time; attributes load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "StreamingSFTDataset": "streaming_sft",
    "PAPER_MIXTURE": "mixture",
    "MixtureConfig": "mixture",
    "build_mixture_stream": "mixture",
    "SourceSpec": "sources",
    "FilterConfig": "filters",
    "FilterReport": "filters",
    "quality_problem": "filters",
    "DifficultyConfig": "difficulty",
    "difficulty_weight": "difficulty",
    "prepare_conversation": "conversation",
    "tokenize_conversation": "conversation",
    "right_trim": "trimming",
    "EmptyCacheHook": "empty_cache",
    "install_sft_trainer_hooks": "sft_trainer_hooks",
    "RLFilterConfig": "rl_filter",
    "filter_rollouts": "rl_filter",
    "DedupConfig": "rl_dedup",
    "dedup": "rl_dedup",
    "SamplingConfig": "rl_rollouts",
    "run_rollouts": "rl_rollouts",
    "build_chat_tokenizer": "tiny_chat_tokenizer",
}
_RENAMED = {"install_sft_trainer_hooks": "install"}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), _RENAMED.get(name, name))
    globals()[name] = value
    return value
