"""A bounded LRU of math-verify verdicts per (gold, answer), shared by threads, with in-flight sharing.

GRPO scores G = 16 responses per prompt against one gold, and they often give the same
answer: math-verify runs once per distinct (gold, answer) pair. A caller that asks for a
pair already being computed by another thread waits for that result instead of starting a
second math-verify call. Only definite verdicts (CORRECT / WRONG) are kept: a TIMEOUT or an
ERROR is returned to the callers waiting on it and then forgotten, so the next one retries.
"""

from __future__ import annotations

import collections
import os
import threading
from concurrent.futures import Future
from typing import Callable, Hashable

from verl_falcon_plugin.rewards.result import RewardStatus

DEFAULT_MAX_ENTRIES = 1 << 16
_KEEP = (RewardStatus.CORRECT, RewardStatus.WRONG)


class VerdictCache:
    """``get_or_compute(key, compute)``: compute once per key, LRU-bounded to ``max_entries``."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0 (0 disables the cache), got {max_entries}")
        self.max_entries = max_entries
        self._done: collections.OrderedDict[Hashable, object] = collections.OrderedDict()
        self._running: dict[Hashable, Future] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    def get_or_compute(self, key: Hashable, compute: Callable[[], object]) -> tuple[object, bool]:
        """(outcome, came_from_cache). ``compute()`` returns an object with a ``status`` attribute."""
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                self.hits += 1
                return self._done[key], True
            running = self._running.get(key)
            if running is None:
                mine: Future = Future()
                self._running[key] = mine
                self.misses += 1
        if running is not None:
            outcome = running.result()
            with self._lock:
                self.hits += 1
            return outcome, True
        try:
            outcome = compute()
        except BaseException as err:
            with self._lock:
                del self._running[key]
            mine.set_exception(err)
            raise
        with self._lock:
            del self._running[key]
            if self.max_entries and getattr(outcome, "status", None) in _KEEP:
                self._done[key] = outcome
                while len(self._done) > self.max_entries:
                    self._done.popitem(last=False)
        mine.set_result(outcome)
        return outcome, False

    def clear(self) -> None:
        with self._lock:
            self._done.clear()
            self.hits = self.misses = 0


_default_cache: VerdictCache | None = None
_default_lock = threading.Lock()


def default_cache() -> VerdictCache:
    """The process-wide cache; ``FALCON_H1R_MATH_CACHE`` entries (default 65536, 0 disables)."""
    global _default_cache
    with _default_lock:
        if _default_cache is None:
            _default_cache = VerdictCache(int(os.environ.get("FALCON_H1R_MATH_CACHE", DEFAULT_MAX_ENTRIES)))
        return _default_cache
