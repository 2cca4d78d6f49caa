"""verl 0.9.1's sandbox_fusion reward always sends ``language="python"``; the patch passes the sample's language.

verl's own ``default_compute_score`` and ``sandbox_fusion.compute_score`` run on a copy of verl; the call to
Sandbox-Fusion is replaced by a recorder of the language it would send (see ``languages_sent.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "languages_sent.py"


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def sent(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE, RUNNER, destination, patched=patched, package="verl", VERL_USE_EXTERNAL_PLUGINS="none"
    )


def test_a_sample_without_language_is_sent_as_python(sent) -> None:
    _, result = sent
    assert result["default_compute_score_no_language"] == "python"


def test_the_samples_language_reaches_the_sandbox_only_with_the_patch(sent) -> None:
    variant, result = sent
    if variant == "patched":
        assert result["default_compute_score_cpp"] == "cpp"
        assert result["compute_score_cpp"] == "cpp"
    else:
        assert result["default_compute_score_cpp"] == "python"  # a C++ solution run as Python
        assert result["compute_score_cpp"].startswith("TypeError") and "'language'" in result["compute_score_cpp"]
