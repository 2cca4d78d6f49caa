"""Right-trimming to the context length (paper: 36K default; the few longer samples are trimmed)."""

from __future__ import annotations

#: the paper's default SFT context, "36K" tokens
DEFAULT_MAX_LENGTH = 36 * 1024


def right_trim(input_ids: list[int], loss_mask: list[int], max_length: int) -> tuple[list[int], list[int], bool]:
    """Keep the first ``max_length`` tokens; returns ``(ids, mask, was_trimmed)``."""
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    if len(input_ids) <= max_length:
        return input_ids, loss_mask, False
    return input_ids[:max_length], loss_mask[:max_length], True
