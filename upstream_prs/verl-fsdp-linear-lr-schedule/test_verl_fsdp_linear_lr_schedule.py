"""verl 0.9.1's FSDP optimizer has constant and cosine schedules only; the patch adds warmup + linear decay.

The scheduler is built by verl's own ``FSDPEngine._build_lr_scheduler`` from an ``FSDPOptimizerConfig`` with
``lr_scheduler_type="linear"`` and stepped past the end; the references are transformers'
``get_linear_schedule_with_warmup`` (warm-up, decay to 0) and torch's ``LinearLR`` (decay to ``min_lr_ratio``).
Learning rates must agree within REL_TOL (float rounding of two formulas). Unpatched, the config rejects "linear".
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "lr_schedules.py"
REL_TOL = 1e-9


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def schedules(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE, RUNNER, destination, patched=patched, package="verl", VERL_USE_EXTERNAL_PLUGINS="none"
    )


@pytest.mark.parametrize("case", ["warmup", "floor"])
def test_linear_schedule_matches_the_references_only_with_the_patch(schedules, case: str) -> None:
    variant, result = schedules
    engine, reference = result[case]["engine"], result[case]["reference"]
    if variant == "unpatched":
        assert isinstance(engine, str) and engine.startswith("rejected"), engine
        return
    assert len(engine) == len(reference)
    assert all(math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-15) for a, b in zip(engine, reference)), (
        engine,
        reference,
    )
