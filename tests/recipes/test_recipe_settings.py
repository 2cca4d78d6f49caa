"""Every setting a recipe sets says whether it is the paper's value or ours (the paper does not give it)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

RECIPES = Path(__file__).parents[2] / "recipes"
PLUGIN_YAML = Path(__file__).parents[2] / "verl_falcon_plugin" / "hydra_conf" / "plugin" / "falcon_h1r.yaml"


def overridden_keys(script: Path) -> set[str]:
    body = script.read_text().split("\n", 1)[1]
    command = "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"^\s+\+?([a-z_]+(?:\.[a-z_]+)+)=", command, re.M))


def table_rows(script: Path) -> str:
    return "\n".join(line for line in script.read_text().splitlines() if line.startswith("#"))


def test_sft_and_rl_recipes_mark_each_setting_paper_or_ours():
    for script in (RECIPES / "sft" / "run_sft_falcon_h1r_7b.sh", RECIPES / "rl" / "grpo_falcon_h1r_7b.sh"):
        header = table_rows(script)
        keys = overridden_keys(script)
        # paths, launch layout and names are not training settings
        settings = {k for k in keys if not k.startswith(("data.train_files", "data.val_files", "model.path",
                    "actor_rollout_ref.model.path", "trainer.project_name", "trainer.experiment_name",
                    "data.custom_cls", "data.streaming", "trainer.logger", "data.num_workers"))}  # fmt: skip
        assert settings, script
        for key in settings:
            row = next((line for line in header.splitlines() if re.match(rf"#\s+{re.escape(key)}\s", line)), None)
            assert row is not None, f"{script.name}: {key} has no paper/ours row"
            paper, here = re.split(r"\s{2,}", row.split(key, 1)[1].strip(), maxsplit=1)
            assert paper and here, f"{script.name}: {key}: the row needs the paper's value and ours: {row!r}"


def test_sft_recipe_uses_the_papers_linear_schedule():
    text = (RECIPES / "sft" / "run_sft_falcon_h1r_7b.sh").read_text()
    assert "optim.lr_scheduler_type=linear" in text and "optim.lr_warmup_steps_ratio=0.04" in text


def test_rl_top_p_is_marked_as_not_in_the_paper():
    line = next(line for line in PLUGIN_YAML.read_text().splitlines() if line.strip().startswith("top_p:"))
    assert "NOT in the paper" in line
    config = yaml.safe_load(PLUGIN_YAML.read_text())
    assert config["actor_rollout_ref"]["rollout"]["top_p"] == 1.0


def test_deepconf_recipe_marks_each_setting():
    for line in (RECIPES / "tts" / "deepconf.yaml").read_text().splitlines():
        if line and not line.startswith("#"):
            assert "paper" in line or "ours" in line, line
