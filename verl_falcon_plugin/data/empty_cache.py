"""The paper's periodic ``torch.cuda.empty_cache()`` against allocator fragmentation in SFT.

verl's SFT trainer calls ``training_client.train_batch(data)`` once per optimizer step
(``SFTTrainer.fit``); the hook wraps that bound method on the trainer instance and
releases the CUDA cache after every ``every_n_steps``-th step. On a machine without
CUDA it counts steps and releases nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from verl_falcon_plugin.requires import require

logger = logging.getLogger(__name__)


def cuda_empty_cache() -> Callable[[], None] | None:
    """``torch.cuda.empty_cache`` when CUDA is available, else ``None`` (a no-op hook)."""
    torch = require("torch", "the periodic empty_cache hook")
    return torch.cuda.empty_cache if torch.cuda.is_available() else None


class EmptyCacheHook:
    def __init__(self, every_n_steps: int, empty_cache: Callable[[], None] | None):
        if every_n_steps <= 0:
            raise ValueError(f"every_n_steps must be positive, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.empty_cache = empty_cache
        self.steps = 0
        self.releases = 0

    def after_step(self) -> None:
        self.steps += 1
        if self.steps % self.every_n_steps == 0 and self.empty_cache is not None:
            self.empty_cache()
            self.releases += 1

    def wrap(self, train_batch: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(train_batch)
        def train_batch_then_maybe_release(*args: Any, **kwargs: Any) -> Any:
            output = train_batch(*args, **kwargs)
            self.after_step()
            return output

        train_batch_then_maybe_release.empty_cache_hook = self  # type: ignore[attr-defined]
        return train_batch_then_maybe_release


def attach_to_trainer(trainer: Any, every_n_steps: int) -> EmptyCacheHook | None:
    """Wrap ``trainer.training_client.train_batch``; ``every_n_steps <= 0`` leaves it alone."""
    if not every_n_steps or every_n_steps <= 0:
        return None
    client = trainer.training_client
    existing = getattr(client.train_batch, "empty_cache_hook", None)
    if existing is not None:
        return existing
    hook = EmptyCacheHook(int(every_n_steps), cuda_empty_cache())
    client.train_batch = hook.wrap(client.train_batch)
    logger.info(
        "SFT: torch.cuda.empty_cache() every %d steps (%s)",
        every_n_steps,
        "CUDA" if hook.empty_cache else "no CUDA: no-op",
    )
    return hook
