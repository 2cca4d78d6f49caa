"""The SFT recipe's overrides compose against verl 0.9.1's own sft_trainer_engine config, with the paper's values."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from verl_falcon_plugin.data.mixture import PAPER_MIXTURE
from verl_falcon_plugin.data.sources import sources_from_config
from verl_falcon_plugin.data.streaming_sft import with_mixture_file

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "sft"


def recipe_overrides() -> list[str]:
    script = (RECIPE / "run_sft_falcon_h1r_7b.sh").read_text()
    body = script.split("-m verl_falcon_plugin.data.run_sft", 1)[1].split('"$@"', 1)[0]
    env = {"BASE": "/ckpt/base", "MAX_LEN": "36864", "HERE": str(RECIPE), "NNODES": "32", "GPUS_PER_NODE": "8"}

    def expand(match: re.Match) -> str:
        name, default = match.group(1), match.group(3)
        return env.get(name, default or "")

    body = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, body.replace("\\\n", " "))
    body = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], body)
    return shlex.split(body)


def test_recipe_composes_with_the_paper_settings():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="verl.trainer.config", version_base=None):
        config = compose(config_name="sft_trainer_engine", overrides=recipe_overrides())
    assert config.optim.lr == 1024e-6 and config.optim.lr_warmup_steps_ratio == 0.04
    assert config.optim.weight_decay == 0.01 and config.optim.clip_grad == 1.0
    assert config.data.train_batch_size == 512 and config.trainer.total_epochs == 3
    assert config.data.max_length == 36 * 1024 and config.data.truncation == "right"
    assert config.engine.ulysses_sequence_parallel_size == 2 and config.model.use_liger
    assert config.engine.dtype == "bfloat16"
    assert config.data.custom_cls.name == "StreamingSFTDataset"
    assert config.trainer.empty_cache_every_n_steps == 50


def test_recipe_mixture_is_the_papers():
    streaming = with_mixture_file({"mixture_file": str(RECIPE / "mixture.yaml")})
    sources = sources_from_config(streaming["sources"])
    assert {s.name: s.probability for s in sources} == PAPER_MIXTURE
    assert streaming["samples_per_epoch"] * 3 // 512 in range(18_000, 18_300)  # paper: ~18k steps
