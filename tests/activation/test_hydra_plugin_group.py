"""`python -m verl.trainer.main_ppo +plugin=falcon_h1r --cfg job` composes the paper's settings."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

# Runs verl's real CLI. "without-plugin" drops our search-path entry (Hydra re-executes plugin
# modules while scanning, so patching the plugin class itself would not stick).
MAIN_PPO = """
import runpy, sys
if sys.argv[1] == "without-plugin":
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
    append = ConfigSearchPathImpl.append
    def append_all_but_ours(self, provider, path, anchor=None):
        if provider != "verl-falcon-plugin":
            append(self, provider, path, anchor)
    ConfigSearchPathImpl.append = append_all_but_ours
sys.argv = ["main_ppo", *sys.argv[2:]]
runpy.run_module("verl.trainer.main_ppo", run_name="__main__")
"""


def main_ppo(*args: str, plugin: bool = True) -> subprocess.CompletedProcess:
    mode = "with-plugin" if plugin else "without-plugin"
    return subprocess.run([sys.executable, "-c", MAIN_PPO, mode, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def composed() -> dict:
    proc = main_ppo("+plugin=falcon_h1r", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_plugin_sets_the_papers_grpo_settings(composed: dict) -> None:
    actor = composed["actor_rollout_ref"]["actor"]
    assert (actor["clip_ratio_low"], actor["clip_ratio_high"]) == (0.2, 0.28)
    assert actor["use_kl_loss"] is False
    assert actor["entropy_coeff"] == 0
    assert composed["algorithm"]["kl_ctrl"]["kl_coef"] == 0.0
    assert composed["algorithm"]["use_kl_in_reward"] is False
    assert composed["algorithm"]["adv_estimator"] == "grpo"
    rollout = composed["actor_rollout_ref"]["rollout"]
    assert (rollout["n"], rollout["temperature"]) == (16, 0.85)


def test_plugin_turns_on_truncated_importance_sampling_capped_at_2(composed: dict) -> None:
    correction = composed["algorithm"]["rollout_correction"]
    assert correction["rollout_is"] == "token"
    assert correction["rollout_is_threshold"] == 2.0


def test_command_line_overrides_still_win_over_the_plugin() -> None:
    proc = main_ppo("+plugin=falcon_h1r", "actor_rollout_ref.rollout.n=4", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["actor_rollout_ref"]["rollout"]["n"] == 4


def test_without_the_search_path_plugin_hydra_only_adds_a_useless_string_key() -> None:
    """Hydra's normal behaviour for `+key=value` with no such group: a new plain key, nothing selected.

    This is why the search-path plugin matters: without it the override is silently a no-op.
    """
    proc = main_ppo("+plugin=falcon_h1r", "--cfg", "job", plugin=False)
    assert proc.returncode == 0, proc.stderr
    composed = yaml.safe_load(proc.stdout)
    assert composed["plugin"] == "falcon_h1r"
    assert composed["actor_rollout_ref"]["actor"]["clip_ratio_high"] == 0.2
