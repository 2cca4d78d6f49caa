"""Difficulty-aware per-sample weights (paper Sec. 2), realised by deterministic resampling.

Hard samples ×1.25–1.75 (by teacher pass rate, or by trace length when no pass rate is
recorded), medium ×1, easy ×0.5 or dropped. The thresholds are not in the paper; the
defaults below are ours and every one is configurable.

**How a weight is realised: resampling, not a loss weight.** A sample of weight ``w``
appears ``floor(w)`` times plus once more with probability ``w - floor(w)``, decided by a
hash of (seed, origin, cycle), so it is deterministic and resumable. Why: the paper states
its mixture *by samples*, verl's ``sft_loss`` normalises by token count (a per-sample loss
factor would need another loss), and resampling keeps verl's loss untouched. In
expectation a weight-``w`` sample contributes ``w`` times the gradient of a weight-1 one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from verl_falcon_plugin.data.conversation import assistant_turns


@dataclass(frozen=True)
class DifficultyConfig:
    enabled: bool = True
    pass_rate_key: str = "pass_rate"
    #: pass rate at or below which a sample is hard (weight 1.75 at 0, 1.25 at this value)
    hard_pass_rate: float = 0.25
    #: pass rate at or above which a sample is easy
    easy_pass_rate: float = 0.875
    #: final-turn characters at or above which a sample without a pass rate is hard ...
    hard_trace_chars: int = 24_000
    #: ... reaching the top hard weight at this length
    hardest_trace_chars: int = 64_000
    #: final-turn characters at or below which a sample without a pass rate is easy
    easy_trace_chars: int = 1_500
    hard_weight_min: float = 1.25
    hard_weight_max: float = 1.75
    easy_weight: float = 0.5
    drop_easy: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.hard_pass_rate < self.easy_pass_rate <= 1:
            raise ValueError("need 0 <= hard_pass_rate < easy_pass_rate <= 1")
        if not self.easy_trace_chars < self.hard_trace_chars < self.hardest_trace_chars:
            raise ValueError("need easy_trace_chars < hard_trace_chars < hardest_trace_chars")
        if not 0 < self.hard_weight_min <= self.hard_weight_max:
            raise ValueError("need 0 < hard_weight_min <= hard_weight_max")

    @classmethod
    def from_mapping(cls, mapping: Any) -> "DifficultyConfig":
        values = dict(mapping or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown difficulty options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)


def difficulty_weight(sample: dict[str, Any], config: DifficultyConfig) -> float:
    """The sample's weight; 0.0 means dropped (easy with ``drop_easy``)."""
    if not config.enabled:
        return 1.0
    pass_rate = sample.get(config.pass_rate_key)
    if pass_rate is not None:
        if isinstance(pass_rate, bool) or not isinstance(pass_rate, (int, float)) or not 0 <= pass_rate <= 1:
            raise ValueError(f"`{config.pass_rate_key}` must be a number in [0, 1], got {pass_rate!r}")
        return _weight_from_pass_rate(float(pass_rate), config)
    return _weight_from_length(final_turn_chars(sample), config)


def final_turn_chars(sample: dict[str, Any]) -> int:
    messages = sample["messages"]
    return len(messages[assistant_turns(messages)[-1]].get("content") or "")


def _weight_from_pass_rate(pass_rate: float, config: DifficultyConfig) -> float:
    if pass_rate <= config.hard_pass_rate:
        hardness = 1.0 - pass_rate / config.hard_pass_rate if config.hard_pass_rate > 0 else 1.0
        return _hard_weight(hardness, config)
    if pass_rate >= config.easy_pass_rate:
        return _easy_weight(config)
    return 1.0


def _weight_from_length(chars: int, config: DifficultyConfig) -> float:
    if chars >= config.hard_trace_chars:
        span = config.hardest_trace_chars - config.hard_trace_chars
        return _hard_weight(min(1.0, (chars - config.hard_trace_chars) / span), config)
    if chars <= config.easy_trace_chars:
        return _easy_weight(config)
    return 1.0


def _hard_weight(hardness: float, config: DifficultyConfig) -> float:
    return config.hard_weight_min + hardness * (config.hard_weight_max - config.hard_weight_min)


def _easy_weight(config: DifficultyConfig) -> float:
    return 0.0 if config.drop_easy else config.easy_weight


def resampled_copies(weight: float, key: str, seed: int) -> int:
    """``floor(weight)`` plus one with probability ``frac(weight)``, deterministic in ``(seed, key)``."""
    whole = math.floor(weight)
    fraction = weight - whole
    if fraction == 0:
        return whole
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    uniform = int.from_bytes(digest, "big") / 2**64
    return whole + (uniform < fraction)
