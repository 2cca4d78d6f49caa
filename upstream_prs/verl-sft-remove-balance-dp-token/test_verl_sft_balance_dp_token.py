"""verl 0.9.1 accepts ``data.balance_dp_token`` and reads it nowhere; the patch removes the key.

Its name promises what verl's SFT loss already always does: ``FSDPEngine.forward_backward_batch`` all-reduces the
mini-batch's loss-token count over the DP group and ``sft_loss`` divides by it (times ``dp_size``), so every
token of the global batch weighs the same. (verl-falcon-plugin's ``tests/losses/test_balanced_dp.py`` proves
that equivalence under DP, SP, micro-batches and dynamic batch size against a single-process reference.)
The reference here is Hydra composing verl's own ``sft_trainer_engine`` config from the copy, in process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upstream_prs.conftest import package_copy

hydra = pytest.importorskip("hydra")

HERE = Path(__file__).parent
OVERRIDE = "data.balance_dp_token=True"


@pytest.fixture(params=["unpatched", "patched"])
def verl_tree(request, tmp_path: Path) -> tuple[str, Path]:
    return request.param, package_copy(HERE, tmp_path, patched=request.param == "patched") / "verl"


def compose(config_dir: Path, overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose("sft_trainer_engine", overrides=overrides)


def test_the_key_is_read_nowhere(verl_tree) -> None:
    _, verl = verl_tree
    readers = [str(path) for path in verl.rglob("*.py") if "balance_dp_token" in path.read_text(errors="ignore")]
    assert readers == []


def test_setting_it_is_silently_accepted_only_without_the_patch(verl_tree) -> None:
    variant, verl = verl_tree
    config_dir = verl / "trainer" / "config"
    assert compose(config_dir, [])  # the config stays valid
    if variant == "unpatched":
        assert compose(config_dir, [OVERRIDE]).data.balance_dp_token is True  # accepted, and a no-op
    else:
        from hydra.errors import ConfigCompositionException

        with pytest.raises(ConfigCompositionException, match="data.balance_dp_token"):
            compose(config_dir, [OVERRIDE])
