"""Shared inputs of the CPU trainer tests: one tiny model dir and RL parquets, built in code once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("verl")
pytest.importorskip("psutil")


@pytest.fixture(scope="session")
def smoke_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from verl_falcon_plugin.testing.rl_smoke import build_smoke_model_dir, write_rl_parquet

    root = tmp_path_factory.mktemp("cpu_trainer_inputs")
    return {
        "model": build_smoke_model_dir(root / "model"),
        "train": write_rl_parquet(root / "train.parquet", 64),
        "val": write_rl_parquet(root / "val.parquet", 8, seed=1, split="test"),
    }


@pytest.fixture
def ray_temp_dir() -> Path:
    """A private, short Ray temp dir (Ray's socket paths must stay under ~107 characters)."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="h1r-ray-", dir="/tmp"))
    yield path
    import shutil

    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def plain_cpu_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainers here must see a user's CPU machine: ``tests/liger/conftest.py`` sets ``TRITON_INTERPRET=1``
    for the whole session, and a subprocess would inherit it (Liger would then run in the interpreter)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
