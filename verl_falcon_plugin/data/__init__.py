"""Data pipelines of Falcon-H1R: the streaming weighted SFT mixture for verl's SFT trainer and
the RL problem preparation (dedup against SFT, rollouts, difficulty filter).

Nothing here imports torch, verl or ``datasets`` at import time; attributes load on first use.
"""

from verl_falcon_plugin.lazy import lazy_exports

_LAZY = {
    "StreamingSFTDataset": ".streaming_sft",
    "PAPER_MIXTURE": ".mixture",
    "MixtureConfig": ".mixture",
    "build_mixture_stream": ".mixture",
    "SourceSpec": ".sources",
    "FilterConfig": ".filters",
    "FilterReport": ".filters",
    "quality_problem": ".filters",
    "DifficultyConfig": ".difficulty",
    "difficulty_weight": ".difficulty",
    "prepare_conversation": ".conversation",
    "tokenize_conversation": ".conversation",
    "right_trim": ".trimming",
    "EmptyCacheHook": ".empty_cache",
    "install_sft_trainer_hooks": ".sft_trainer_hooks:install",
    "RLFilterConfig": ".rl_filter",
    "filter_rollouts": ".rl_filter",
    "DedupConfig": ".rl_dedup",
    "dedup": ".rl_dedup",
    "SamplingConfig": ".rl_rollouts",
    "run_rollouts": ".rl_rollouts",
    "build_chat_tokenizer": ".tiny_chat_tokenizer",
}
__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
