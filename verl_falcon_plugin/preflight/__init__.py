"""`falcon-h1r check`: prove the patches exact on a tiny model in the user's environment."""

from verl_falcon_plugin.preflight.registry import (
    OPTIONS,
    Check,
    CheckOutcome,
    CheckResult,
    Status,
    discover_checks,
    format_table,
    register_check,
    run_check,
    select_checks,
)

__all__ = [
    "OPTIONS",
    "Check",
    "CheckOutcome",
    "CheckResult",
    "Status",
    "discover_checks",
    "format_table",
    "register_check",
    "run_check",
    "select_checks",
]
