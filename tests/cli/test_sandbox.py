"""``falcon-h1r sandbox serve`` reads no file: its bad flag values are usage errors before anything starts."""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_usage_error


@pytest.mark.parametrize(
    "flag, value, needle",
    [("--workers", "0", ">= 1"), ("--port", "99999", "0-65535"), ("--port", "eighty", "not a whole number")],
)
def test_bad_flag_values(cli, flag, value, needle):
    assert_usage_error(cli("sandbox", "serve", flag, value), "sandbox serve", f"argument {flag}", needle)
