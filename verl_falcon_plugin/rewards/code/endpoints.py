"""Round-robin over several sandbox endpoints, shared by every thread of the process.

One cycle for all callers (a lock-protected counter), so N threads spread over M endpoints
instead of all starting on the first. An endpoint that fails at the transport level
(refused, reset, timed out, HTTP 5xx) is skipped for ``cooldown_s`` and the call is retried on
the next one; when every endpoint is cooling down they are all tried once more before giving
up, so a fleet that recovered is used again at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class EndpointDown(Exception):
    """Raised by the per-endpoint call when the endpoint itself failed (try another one)."""


class AllEndpointsDown(RuntimeError):
    def __init__(self, errors: dict[str, str]) -> None:
        details = "; ".join(f"{ep}: {err}" for ep, err in errors.items())
        super().__init__(f"every sandbox endpoint failed: {details}")
        self.errors = errors


@dataclass
class EndpointStats:
    calls: int = 0
    failures: int = 0
    down_until: float = 0.0
    last_error: str | None = None


@dataclass
class EndpointPool:
    endpoints: Sequence[str]
    cooldown_s: float = 5.0
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    stats: dict[str, EndpointStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.endpoints or not all(
            isinstance(e, str) and e.startswith(("http://", "https://")) for e in self.endpoints
        ):
            raise ValueError(f"endpoints must be a non-empty list of http(s):// URLs, got {list(self.endpoints)!r}")
        self.endpoints = tuple(e.rstrip("/") for e in self.endpoints)
        self.stats = {e: EndpointStats() for e in self.endpoints}

    def _order(self) -> list[str]:
        """This call's try order: the cycle's next healthy endpoint first, then the other healthy
        ones, then the cooling ones. The shared cursor moves past the endpoint chosen, so a down
        endpoint's turns are spread over the others instead of all going to its successor."""
        n = len(self.endpoints)
        with self._lock:
            now = time.monotonic()
            rotated = [(self._next + i) % n for i in range(n)]
            healthy = [i for i in rotated if self.stats[self.endpoints[i]].down_until <= now]
            cooling = [i for i in rotated if self.stats[self.endpoints[i]].down_until > now]
            first = (healthy or cooling)[0]
            self._next = (first + 1) % n
        return [self.endpoints[i] for i in healthy + cooling]

    def call(self, fn: Callable[[str], T]) -> tuple[str, T]:
        """``fn(endpoint)`` on the next endpoint, failing over on :class:`EndpointDown`; returns (endpoint, result)."""
        errors: dict[str, str] = {}
        for endpoint in self._order():
            with self._lock:
                self.stats[endpoint].calls += 1
            try:
                result = fn(endpoint)
            except EndpointDown as err:
                with self._lock:
                    stats = self.stats[endpoint]
                    stats.failures += 1
                    stats.down_until = time.monotonic() + self.cooldown_s
                    stats.last_error = str(err)
                errors[endpoint] = str(err)
                continue
            with self._lock:
                self.stats[endpoint].down_until = 0.0
            return endpoint, result
        raise AllEndpointsDown(errors)


_POOLS: dict[tuple[str, ...], EndpointPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(endpoints: Sequence[str] | EndpointPool) -> EndpointPool:
    """The process-wide pool for this list of endpoints, so that every caller shares one cycle."""
    if isinstance(endpoints, EndpointPool):
        return endpoints
    if isinstance(endpoints, str):
        raise ValueError(f"endpoints must be a list of URLs, got the string {endpoints!r}; wrap it in a list")
    key = tuple(e.rstrip("/") for e in endpoints)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = EndpointPool(key)
        return _POOLS[key]
