"""Voting over parallel traces (DeepConf Sec. 3 and the Falcon-H1R paper, Sec. 5.1).

Every method is a (weighted) plurality over canonical answer strings:

========================  =========================================================
``majority``              weight 1 per trace
``mean``                  :func:`~.confidence.mean_confidence`
``tail``                  :func:`~.confidence.tail_confidence` over ``window`` tokens
``bottom_window``         :func:`~.confidence.bottom_group_confidence` (10 % of windows)
``min_window``            :func:`~.confidence.lowest_group_confidence`
========================  =========================================================

With ``keep_top`` = η only the traces whose score reaches
:func:`~.confidence.keep_top_threshold` vote; ``majority`` filters by the lowest
group confidence (the online criterion). Traces whose answer is ``None`` never
vote. Ties go to the answer whose first vote came first, so results are
deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vllm_plugins.deepconf.confidence import (
    DEFAULT_WINDOW,
    bottom_group_confidence,
    keep_top_threshold,
    lowest_group_confidence,
    mean_confidence,
    tail_confidence,
)

Confs = Sequence[float] | np.ndarray


def _scorers(window: int) -> dict[str, Callable[[Confs], float]]:
    return {
        "majority": lambda c: lowest_group_confidence(c, window),
        "mean": mean_confidence,
        "tail": lambda c: tail_confidence(c, window),
        "bottom_window": lambda c: bottom_group_confidence(c, window),
        "min_window": lambda c: lowest_group_confidence(c, window),
    }


VOTING_METHODS: tuple[str, ...] = ("majority", "mean", "tail", "bottom_window", "min_window")


def trace_score(confs: Confs, method: str, window: int = DEFAULT_WINDOW) -> float:
    """The confidence ``method`` weights (or, for ``majority``, filters) a trace by."""
    scorers = _scorers(window)
    if method not in scorers:
        raise ValueError(f"unknown voting method {method!r}; choose one of {', '.join(VOTING_METHODS)}")
    return scorers[method](confs)


def vote(
    answers: Sequence[str | None],
    confs: Sequence[Confs],
    method: str,
    window: int = DEFAULT_WINDOW,
    keep_top: float | None = None,
) -> str | None:
    """The winning answer among ``answers`` (one per trace), or None when no trace has one."""
    if len(answers) != len(confs):
        raise ValueError(f"answers ({len(answers)}) and confs ({len(confs)}) must have one entry per trace")
    if method not in VOTING_METHODS:
        raise ValueError(f"unknown voting method {method!r}; choose one of {', '.join(VOTING_METHODS)}")
    voters = [(a, c) for a, c in zip(answers, confs) if a is not None]
    if not voters:
        return None
    scores = np.array([trace_score(c, method, window) for _, c in voters])
    keep = np.ones(len(voters), dtype=bool)
    if keep_top is not None:
        keep = scores >= keep_top_threshold(scores, keep_top)
    weights = np.ones_like(scores) if method == "majority" else scores
    totals: dict[str, float] = {}
    for (answer, _), weight, kept in zip(voters, weights, keep):
        if kept:
            totals[answer] = totals.get(answer, 0.0) + float(weight)
    # max() returns the first maximal key, and dicts keep first-vote order
    return max(totals, key=totals.__getitem__)
