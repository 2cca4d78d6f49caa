"""DeepConf online (Fu et al. 2025, Algorithm 2), independent of the engine.

The controller decides *what* to generate; a :class:`TraceGenerator` decides *how*
(vLLM through the logits processor, HF ``generate`` through :mod:`.hf`, or a
synthetic population in tests and benchmarks). One run for one problem:

1. **Warm-up**: ``n_init`` traces without early stop.
2. **Threshold**: ``s = keep_top_threshold(C_least of the warm-up traces, eta)``:
   ``eta`` is the fraction of warm-up traces that would have survived, so
   ``eta = 0.1`` is aggressive (the Falcon-H1R setting) and ``eta = 0.9`` conservative.
3. **Online phase**: the rest of the ``budget`` traces, in batches of ``batch_size``,
   each stopped as soon as the mean of its last ``window`` token confidences drops
   below ``s`` (checked once a full window exists, as in the reference processor).
   Between batches the run ends early on **consensus** (the leading answer holds at
   least ``consensus`` of the C_least-weighted vote) or when ``token_budget`` is spent.
4. **Vote** over the traces that finished (stopped traces are discarded, Alg. 2).

Cost accounting counts every generated token, those of stopped traces included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vllm_plugins.deepconf.confidence import DEFAULT_WINDOW, keep_top_threshold, lowest_group_confidence
from vllm_plugins.deepconf.voting import VOTING_METHODS, vote


@dataclass(frozen=True, eq=False)  # identity equality: confs is an array
class Trace:
    """One generated trace: its token confidences (one per generated token, EOS included)."""

    confs: np.ndarray
    answer: str | None
    stopped_early: bool
    text: str = ""

    @property
    def num_tokens(self) -> int:
        return int(len(self.confs))


class TraceGenerator(Protocol):
    def generate(self, num_traces: int, threshold: float | None, window: int) -> Sequence[Trace]:
        """Generate ``num_traces`` traces; stop each early below ``threshold`` (never when None)."""
        ...


@dataclass(frozen=True)
class OnlineConfig:
    budget: int = 512
    n_init: int = 16
    eta: float = 0.1
    window: int = DEFAULT_WINDOW
    batch_size: int = 64
    consensus: float | None = None
    token_budget: int | None = None
    vote_window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        if self.n_init < 1:
            raise ValueError(f"n_init must be >= 1 (the warm-up sets the threshold), got {self.n_init}")
        if self.budget < self.n_init:
            raise ValueError(f"budget ({self.budget}) must be >= n_init ({self.n_init})")
        if not 0.0 < self.eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], the fraction of warm-up traces kept; got {self.eta}")
        if self.window < 1 or self.batch_size < 1 or self.vote_window < 1:
            raise ValueError("window, batch_size and vote_window must be positive")
        if self.consensus is not None and not 0.5 < self.consensus <= 1.0:
            raise ValueError(f"consensus (tau) must be in (0.5, 1], got {self.consensus}")
        if self.token_budget is not None and self.token_budget < 1:
            raise ValueError(f"token_budget must be positive, got {self.token_budget}")


@dataclass
class OnlineResult:
    threshold: float
    warmup: list[Trace]
    online: list[Trace]
    stop_reason: str  # "budget" | "consensus" | "token_budget"
    votes: dict[str, str | None] = field(default_factory=dict)

    @property
    def traces(self) -> list[Trace]:
        return self.warmup + self.online

    @property
    def total_tokens(self) -> int:
        return sum(t.num_tokens for t in self.traces)

    @property
    def num_stopped(self) -> int:
        return sum(t.stopped_early for t in self.online)

    @property
    def voters(self) -> list[Trace]:
        return [t for t in self.traces if not t.stopped_early]


def warmup_threshold(warmup: Sequence[Trace], eta: float, window: int) -> float:
    """``s``: the η-kept percentile of the warm-up traces' lowest group confidences."""
    return keep_top_threshold([lowest_group_confidence(t.confs, window) for t in warmup], eta)


def consensus_ratio(traces: Sequence[Trace], window: int) -> float:
    """β: the leading answer's share of the C_least-weighted vote (0 when nobody answered)."""
    weights: dict[str, float] = {}
    for t in traces:
        if t.answer is not None and not t.stopped_early:
            weights[t.answer] = weights.get(t.answer, 0.0) + lowest_group_confidence(t.confs, window)
    total = sum(weights.values())
    return max(weights.values()) / total if total > 0 else 0.0


def vote_all_methods(traces: Sequence[Trace], window: int) -> dict[str, str | None]:
    answers = [t.answer for t in traces]
    confs = [t.confs for t in traces]
    return {m: vote(answers, confs, m, window=window) for m in VOTING_METHODS}


def run_online(generator: TraceGenerator, config: OnlineConfig) -> OnlineResult:
    """Algorithm 2 for one problem."""
    warmup = list(generator.generate(config.n_init, None, config.window))
    if len(warmup) != config.n_init:
        raise RuntimeError(f"generator returned {len(warmup)} warm-up traces, expected {config.n_init}")
    threshold = warmup_threshold(warmup, config.eta, config.window)
    result = OnlineResult(threshold=threshold, warmup=warmup, online=[], stop_reason="budget")
    remaining = config.budget - config.n_init
    while remaining > 0:
        if config.consensus is not None and consensus_ratio(result.traces, config.vote_window) >= config.consensus:
            result.stop_reason = "consensus"
            break
        if config.token_budget is not None and result.total_tokens >= config.token_budget:
            result.stop_reason = "token_budget"
            break
        batch = list(generator.generate(min(config.batch_size, remaining), threshold, config.window))
        if not batch:
            raise RuntimeError("generator returned no traces for a non-empty request")
        result.online.extend(batch)
        remaining -= len(batch)
    result.votes = vote_all_methods(result.voters, config.vote_window)
    return result


def stop_index(confs: Sequence[float] | np.ndarray, threshold: float, window: int) -> int | None:
    """The first token index at which the online rule stops a trace, or None.

    Token ``i`` stops the trace when ``i + 1 >= window`` and the mean of
    ``confs[i-window+1 : i+1]`` is below ``threshold``; the stopped trace keeps
    ``i + 1`` tokens, its last one replaced by EOS. This is the reference the
    processors (vLLM and HF) are tested against.
    """
    arr = np.asarray(confs, dtype=np.float64)
    if arr.size < window:
        return None
    csum = np.concatenate(([0.0], np.cumsum(arr)))
    means = (csum[window:] - csum[:-window]) / window
    below = np.nonzero(means < threshold)[0]
    return int(below[0]) + window - 1 if below.size else None


def expected_full_tokens(result: OnlineResult) -> float:
    """Estimate of the tokens the same number of traces would have cost without stopping.

    Stopped traces are charged the mean length of the traces that ran to the end
    (their true length is unknowable once stopped), so this is an estimate.
    """
    finished = [t.num_tokens for t in result.traces if not t.stopped_early]
    mean_len = float(np.mean(finished)) if finished else math.nan
    return sum(t.num_tokens if not t.stopped_early else max(t.num_tokens, mean_len) for t in result.traces)
