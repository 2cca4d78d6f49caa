"""verl 0.9.1's fn_name wrapper fails on stdin with a trailing newline; the patch skips blank lines.

verl's own ``sandbox_fusion.compute_score`` builds the wrapper; the code it would send to Sandbox-Fusion runs in
a local ``python3`` (see ``score_fn_name_case.py``). ``add(1, 2)`` with stdin ``"1\\n2"`` scores 1 in both
versions (control); with ``"1\\n2\\n"`` it scores 0 unpatched (``WrapperError: Invalid JSON input``) and 1 patched.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "score_fn_name_case.py"


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def scores(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE, RUNNER, destination, patched=patched, package="verl", VERL_USE_EXTERNAL_PLUGINS="none"
    )


def test_without_trailing_newline_both_score_1(scores) -> None:
    _, result = scores
    assert result["no_newline"]["score"] == 1.0, result


def test_with_trailing_newline_only_the_patched_wrapper_scores_1(scores) -> None:
    variant, result = scores
    case = result["trailing_newline"]
    if variant == "patched":
        assert case["score"] == 1.0, case
    else:
        assert case["score"] == 0.0 and "WrapperError: Invalid JSON input for 'add'" in case["stderr"], case
