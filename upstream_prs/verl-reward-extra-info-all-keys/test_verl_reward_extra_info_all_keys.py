"""verl 0.9.1 takes the reward extra-info keys from the first sample only; the patch stacks the union of keys.

verl's own ``RewardLoopManager.compute_rm_score`` runs on a stand-in manager (see ``stack_extra_infos.py``).
Unpatched, a key that only a later sample has is dropped from the batch, and a key that a later sample lacks
raises KeyError; patched, every key is a column, ``None`` where a sample lacks it. ``AgentLoopWorker`` uses the
same helper after the patch (the same loop before it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "stack_extra_infos.py"


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def stacked(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE, RUNNER, destination, patched=patched, package="verl", VERL_USE_EXTERNAL_PLUGINS="none"
    )


def test_a_key_only_later_samples_have_is_kept_only_with_the_patch(stacked) -> None:
    variant, result = stacked
    case = result["later_sample_has_more_keys"]
    if variant == "unpatched":
        assert case == {"reward_extra_keys": ["acc"], "columns": {"acc": [1.0, 0.0, 1.0]}}  # "error" silently lost
    else:
        assert case == {
            "reward_extra_keys": ["acc", "error"],
            "columns": {"acc": [1.0, 0.0, 1.0], "error": [None, "timeout", None]},
        }


def test_a_key_a_later_sample_lacks_fails_only_without_the_patch(stacked) -> None:
    variant, result = stacked
    case = result["first_sample_has_more_keys"]
    if variant == "unpatched":
        assert case == {"error": "KeyError: 'error'"}
    else:
        assert case["columns"] == {"acc": [1.0, 0.0, 1.0], "error": ["timeout", None, None]}
