"""Synthetic DeepConf trace populations for tests and ``benchmarks/deepconf_savings.py`` (test-only).

A trace is correct with probability ``p_correct``; its token confidences are a
noisy level, higher for correct traces (``gap``), with occasional low-confidence
stretches that are longer and deeper in wrong traces: the calibration the
Falcon-H1R paper credits for DeepConf's savings. Early stop applies the online
rule (:func:`~.online.stop_index`) to the full curve, so a stopped trace's
tokens are exactly those a processor would have let through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vllm_plugins.deepconf.online import Trace, stop_index


@dataclass
class SyntheticPopulation:
    p_correct: float = 0.6
    answer: str = "42"
    wrong_answers: Sequence[str] = ("41", "43", "7", "12")
    mean_length: int = 6000
    level: float = 12.0
    gap: float = 1.5
    noise: float = 2.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)
    full_lengths: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _curve(self, correct: bool) -> np.ndarray:
        rng = self._rng
        length = max(64, int(rng.normal(self.mean_length, self.mean_length / 4)))
        level = self.level + (self.gap if correct else 0.0)
        confs = level + self.noise * rng.standard_normal(length)
        # a low-confidence stretch ("wait, let me reconsider"): deeper and longer when wrong
        span = int(length * (0.1 if correct else 0.3))
        start = int(rng.integers(0, length - span))
        confs[start : start + span] -= self.gap * (0.5 if correct else 1.5)
        return np.clip(confs, 0.0, None)

    def generate(self, num_traces: int, threshold: float | None, window: int) -> list[Trace]:
        traces = []
        for _ in range(num_traces):
            correct = bool(self._rng.random() < self.p_correct)
            confs = self._curve(correct)
            self.full_lengths.append(len(confs))
            answer = self.answer if correct else str(self._rng.choice(list(self.wrong_answers)))
            stop = None if threshold is None else stop_index(confs, threshold, window)
            if stop is None:
                traces.append(Trace(confs, answer, stopped_early=False))
            else:
                traces.append(Trace(confs[: stop + 1], None, stopped_early=True))
        return traces
