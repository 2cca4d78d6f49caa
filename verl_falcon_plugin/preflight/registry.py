"""The preflight's named checks: a registry, a runner, and the printed table.

Each area of the project contributes checks from its own module in
``verl_falcon_plugin.preflight.checks``; every module there is imported by
:func:`discover_checks`, so adding a check never means editing a shared list.
"""

from __future__ import annotations

import enum
import importlib
import logging
import pkgutil
import time
import traceback
from dataclasses import dataclass
from typing import Callable

logger = logging.getLogger(__name__)


class Status(str, enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class CheckResult:
    status: Status
    detail: str
    error: float | None = None
    tolerance: float | None = None

    @classmethod
    def within(cls, error: float, tolerance: float, detail: str) -> "CheckResult":
        """PASS when the measured ``error`` is at most ``tolerance`` (NaN fails)."""
        passed = error <= tolerance  # NaN compares False
        return cls(Status.PASS if passed else Status.FAIL, detail, error, tolerance)

    @classmethod
    def passed(cls, detail: str) -> "CheckResult":
        return cls(Status.PASS, detail)

    @classmethod
    def failed(cls, detail: str) -> "CheckResult":
        return cls(Status.FAIL, detail)

    @classmethod
    def skipped(cls, reason: str) -> "CheckResult":
        return cls(Status.SKIP, reason)


@dataclass(frozen=True)
class Check:
    name: str
    area: str
    run: Callable[[], CheckResult]


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    result: CheckResult
    seconds: float


@dataclass
class PreflightOptions:
    """What the user points the preflight at (``falcon-h1r check --model PATH``)."""

    model_path: str | None = None


OPTIONS = PreflightOptions()

_CHECKS: dict[str, Check] = {}


def register_check(name: str, area: str) -> Callable[[Callable[[], CheckResult]], Callable[[], CheckResult]]:
    """Register ``fn`` as the preflight check ``name``; names are unique."""

    def decorator(fn: Callable[[], CheckResult]) -> Callable[[], CheckResult]:
        if name in _CHECKS and _CHECKS[name].run is not fn:
            raise ValueError(f"preflight check {name!r} is registered twice")
        _CHECKS[name] = Check(name, area, fn)
        return fn

    return decorator


def discover_checks() -> dict[str, Check]:
    """Import every module of ``preflight.checks`` and return the registry."""
    from verl_falcon_plugin.preflight import checks

    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{module.name}")
    return dict(_CHECKS)


def run_check(check: Check) -> CheckOutcome:
    """Run one check; an exception is a FAIL carrying its traceback's last line."""
    start = time.perf_counter()
    try:
        result = check.run()
    except Exception as err:  # a crashing check is a failed check, reported, never hidden
        logger.debug("check %s raised", check.name, exc_info=True)
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        result = CheckResult.failed(f"raised {last}")
    return CheckOutcome(check, result, time.perf_counter() - start)


def select_checks(checks: dict[str, Check], only: list[str] | None) -> list[Check]:
    """The checks whose name or area is in ``only`` (all when ``only`` is empty)."""
    if not only:
        return list(checks.values())
    unknown = [w for w in only if w not in checks and w not in {c.area for c in checks.values()}]
    if unknown:
        known = ", ".join(sorted(checks))
        raise ValueError(f"unknown check or area {unknown}; known checks: {known}")
    return [c for c in checks.values() if c.name in only or c.area in only]


def format_table(outcomes: list[CheckOutcome]) -> str:
    rows = [("check", "status", "error", "tolerance", "time", "detail")]
    for o in outcomes:
        r = o.result
        rows.append(
            (
                o.check.name,
                r.status.value,
                "" if r.error is None else f"{r.error:.3g}",
                "" if r.tolerance is None else f"{r.tolerance:.3g}",
                f"{o.seconds:.1f}s",
                r.detail,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
