"""verl 0.9.1 cannot start its trainers without an accelerator; the series adds a ``cpu`` platform.

Each part is checked on its own (see ``cpu_smoke.py``) on a copy of verl with and without the series, with
``VERL_PLATFORM=cpu``: the platform resolves; ``EngineRegistry`` finds the FSDP engine for device ``cpu``; verl's
own ``initialize_global_process_group`` makes a gloo group that all-reduces. The references are verl's own
registries and torch.distributed. Unpatched, with a cpu platform registered from outside, the engine lookup and
the process group still fail, each with its own error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import run_on_copy

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RUNNER = HERE / "cpu_smoke.py"


@pytest.fixture(scope="module", params=["unpatched", "patched"])
def smoke(request, tmp_path_factory) -> tuple[str, dict]:
    destination = tmp_path_factory.mktemp(request.param)
    patched = request.param == "patched"
    return request.param, run_on_copy(
        HERE,
        RUNNER,
        destination,
        patched=patched,
        package="verl",
        VERL_PLATFORM="cpu",
        VERL_USE_EXTERNAL_PLUGINS="none",
    )


def test_the_cpu_platform_resolves_only_with_the_series(smoke) -> None:
    variant, result = smoke
    if variant == "patched":
        assert result["platform"] == "cpu"
        # kept in step with verl-falcon-plugin's verl_falcon_plugin/cpu/platform.py, which it was taken from
        assert result["differences_from_the_plugin"] == []
    else:
        assert result["platform"].startswith("ValueError: Unknown platform 'cpu'")
        assert result["registered_from_outside"] == "cpu"


def test_the_fsdp_engine_is_registered_for_cpu_only_with_the_series(smoke) -> None:
    variant, result = smoke
    if variant == "patched":
        assert result["engine"] == "FSDPEngineWithLMHead"
    else:
        assert result["engine"].startswith("ValueError: No engine registered for device='cpu'")


def test_verl_makes_a_gloo_process_group_only_with_the_series(smoke) -> None:
    variant, result = smoke
    if variant == "patched":
        assert result["process_group"] == {"backend": "gloo", "all_reduce": [1.0, 1.0]}
    else:
        assert "cpu:gloo,cpu:gloo" in result["process_group"]
