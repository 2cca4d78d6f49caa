"""The outcome of scoring one response, shared by every reward scheme."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class RewardStatus(str, enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    NO_ANSWER = "no_answer"  # nothing extractable (no \boxed{}, no code block, ...)
    TIMEOUT = "timeout"  # the checker ran past its time bound: never silently scored 0
    ERROR = "error"  # the checker itself failed (sandbox down, judge unreachable, ...)


@dataclass(frozen=True)
class RewardResult:
    score: float
    status: RewardStatus
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_verl_dict(self) -> dict[str, Any]:
        """verl reward managers accept a dict with a ``score`` key; the rest becomes extra info."""
        return {"score": float(self.score), "status": self.status.value, **self.metadata}
