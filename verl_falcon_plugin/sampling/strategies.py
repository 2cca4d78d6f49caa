"""The three online-sampling strategies of Falcon-H1R (Sec. 3.2), as a small registry.

Every strategy sees only groups with signal: the context drops zero-advantage
groups as they are generated (and counts them), so none can reach a batch.

* ``backfill`` (the paper's default): take cached groups first, then call the
  generator until the batch holds exactly ``target`` groups; what the last call
  produced beyond that is surplus, kept by the cache (or discarded without one).
* ``reject``: generate ``target`` prompts once and train on the groups with signal;
  the batch shrinks.
* ``duplicate``: as ``reject``, then restore ``target`` by duplicating groups with
  signal, drawn at random. The paper says "positive-advantage samples": after
  mean-centring, every group with a non-zero advantage has at least one rollout
  with a positive advantage and one with a negative one, and a group with all
  advantages zero has none, so "positive-advantage group" here means "group with
  signal". Copies are drawn in rounds of a random permutation, so copy counts
  differ by at most one. With no group with signal the batch stays empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from verl_falcon_plugin.sampling.groups import Group


class BuildContext(Protocol):
    """What the batcher exposes to a strategy for one training step."""

    target: int
    policy_version: int
    rng: np.random.Generator

    def generate_call(self, num_prompts: int | None = None) -> list[Group]:
        """One generator call; returns its groups with signal (zero-advantage ones are counted and dropped)."""

    def take_cached(self, count: int) -> list[Group]:
        """Up to ``count`` cached groups (none without a cache)."""

    def keep_surplus(self, groups: list[Group]) -> None:
        """Offer surplus groups to the cache (discarded, and counted, without one)."""

    def check_call_budget(self) -> bool:
        """False (or an error, per ``on_budget_exhausted``) once ``max_generation_calls_per_step`` are used up."""

    @property
    def gen_batch_prompts(self) -> int: ...


Strategy = Callable[[BuildContext], list[Group]]
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    def decorator(fn: Strategy) -> Strategy:
        if name in STRATEGIES and STRATEGIES[name] is not fn:
            raise ValueError(f"sampling strategy {name!r} is registered twice")
        STRATEGIES[name] = fn
        return fn

    return decorator


@register_strategy("backfill")
def backfill(ctx: BuildContext) -> list[Group]:
    batch = ctx.take_cached(ctx.target)
    surplus: list[Group] = []
    while len(batch) < ctx.target and ctx.check_call_budget():
        kept = ctx.generate_call()
        need = ctx.target - len(batch)
        batch.extend(kept[:need])
        surplus = kept[need:]
    ctx.keep_surplus(surplus)
    return batch


def _one_round(ctx: BuildContext) -> list[Group]:
    """Generate exactly ``target`` prompts, in calls of at most ``gen_batch_prompts``."""
    kept: list[Group] = []
    remaining = ctx.target
    while remaining > 0 and ctx.check_call_budget():
        size = min(ctx.gen_batch_prompts, remaining)
        kept.extend(ctx.generate_call(size))
        remaining -= size
    return kept


@register_strategy("reject")
def reject(ctx: BuildContext) -> list[Group]:
    return _one_round(ctx)


@register_strategy("duplicate")
def duplicate(ctx: BuildContext) -> list[Group]:
    kept = _one_round(ctx)
    deficit = ctx.target - len(kept)
    if not kept or deficit == 0:
        return kept
    rounds = -(-deficit // len(kept))
    order = np.concatenate([ctx.rng.permutation(len(kept)) for _ in range(rounds)])[:deficit]
    return kept + [kept[i] for i in order]
