"""The per-request opt-in: flat ``SamplingParams.extra_args`` keys.

Flat scalar keys, so they also travel over the OpenAI-compatible server as
``vllm_xargs`` (``{"deepconf_threshold": 17.3, "deepconf_window": 2048}``).
A request without ``deepconf_threshold`` is untouched by the processor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vllm_plugins.deepconf.confidence import DEFAULT_TOP_K, DEFAULT_WINDOW

THRESHOLD_KEY = "deepconf_threshold"
WINDOW_KEY = "deepconf_window"
TOP_K_KEY = "deepconf_top_k"
KEYS = (THRESHOLD_KEY, WINDOW_KEY, TOP_K_KEY)


@dataclass(frozen=True)
class DeepConfArgs:
    threshold: float
    window: int = DEFAULT_WINDOW
    top_k: int = DEFAULT_TOP_K

    def as_extra_args(self) -> dict[str, float | int]:
        return {THRESHOLD_KEY: self.threshold, WINDOW_KEY: self.window, TOP_K_KEY: self.top_k}


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"extra_args[{key!r}] must be a positive integer, got {value!r}")
    return value


def parse_extra_args(
    extra_args: Mapping[str, Any] | None, *, ignore_eos: bool = False, vocab_size: int | None = None
) -> DeepConfArgs | None:
    """The request's DeepConf settings, None when it did not opt in; ValueError on bad values."""
    extra_args = extra_args or {}
    if THRESHOLD_KEY not in extra_args:
        stray = [k for k in (WINDOW_KEY, TOP_K_KEY) if k in extra_args]
        if stray:
            raise ValueError(f"extra_args sets {stray} without {THRESHOLD_KEY!r}; add the threshold to opt in")
        return None
    threshold = extra_args[THRESHOLD_KEY]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"extra_args[{THRESHOLD_KEY!r}] must be a finite number, got {threshold!r}")
    window = _positive_int(WINDOW_KEY, extra_args.get(WINDOW_KEY, DEFAULT_WINDOW))
    top_k = _positive_int(TOP_K_KEY, extra_args.get(TOP_K_KEY, DEFAULT_TOP_K))
    if vocab_size is not None and top_k > vocab_size:
        raise ValueError(f"extra_args[{TOP_K_KEY!r}]={top_k} exceeds the vocabulary size {vocab_size}")
    if ignore_eos:
        raise ValueError(
            f"{THRESHOLD_KEY!r} stops a trace by forcing EOS, which ignore_eos=True would disregard; "
            "drop ignore_eos or the DeepConf extra_args"
        )
    return DeepConfArgs(float(threshold), window, top_k)
