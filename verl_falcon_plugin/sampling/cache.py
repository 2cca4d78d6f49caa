"""GenerationCache: a bounded, staleness-aware FIFO of surplus groups with signal.

Backfill generates in whole calls, so the call that completes a batch usually
yields more valid groups than the batch still needs. Plain backfill throws that
surplus away; the cache keeps it for the next steps, under three limits that keep
the training data close to on-policy (Falcon-H1R, Sec. 3.2):

* size: at most ``max_groups``; inserting beyond it evicts the oldest entries (FIFO);
* age: a group generated more than ``max_age_steps`` policy updates ago is evicted
  before any read, so it is never trained on;
* refresh: every ``refresh_every_steps`` steps the whole cache is dropped.

Reads are oldest-first, which spends groups before they age out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields

from verl_falcon_plugin.sampling.config import CacheConfig
from verl_falcon_plugin.sampling.groups import Group


@dataclass
class CacheCounters:
    """Cumulative counters; :meth:`GenerationCache.drain_counters` returns and resets them per step."""

    hits: int = 0
    inserted: int = 0
    evicted_age: int = 0
    evicted_size: int = 0
    evicted_refresh: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class GenerationCache:
    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._groups: deque[Group] = deque()
        self._counters = CacheCounters()

    def __len__(self) -> int:
        return len(self._groups)

    def __iter__(self):
        return iter(tuple(self._groups))

    def refresh_if_due(self, step: int) -> int:
        """Drop everything at steps that are multiples of ``refresh_every_steps``; returns how many."""
        period = self.config.refresh_every_steps
        if period is None or step % period != 0 or not self._groups:
            return 0
        dropped = len(self._groups)
        self._groups.clear()
        self._counters.evicted_refresh += dropped
        return dropped

    def evict_stale(self, policy_version: int) -> int:
        """Remove every group older than ``max_age_steps`` at ``policy_version``; returns how many."""
        fresh = deque(g for g in self._groups if g.age(policy_version) <= self.config.max_age_steps)
        evicted = len(self._groups) - len(fresh)
        self._groups = fresh
        self._counters.evicted_age += evicted
        return evicted

    def take(self, count: int, policy_version: int) -> list[Group]:
        """Up to ``count`` groups, oldest first, all within the age limit at ``policy_version``."""
        self.evict_stale(policy_version)
        taken = [self._groups.popleft() for _ in range(min(count, len(self._groups)))]
        self._counters.hits += len(taken)
        return taken

    def put(self, groups: list[Group]) -> int:
        """Append surplus groups; evicts the oldest beyond ``max_groups``. Returns how many were evicted."""
        for group in groups:
            if not group.has_signal:
                raise ValueError(f"GenerationCache only holds groups with signal; {group.uid!r} has zero advantage")
        self._groups.extend(groups)
        self._counters.inserted += len(groups)
        overflow = max(0, len(self._groups) - self.config.max_groups)
        for _ in range(overflow):
            self._groups.popleft()
        self._counters.evicted_size += overflow
        return overflow

    def drain_counters(self) -> CacheCounters:
        counters, self._counters = self._counters, CacheCounters()
        return counters
