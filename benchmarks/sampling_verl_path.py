"""Generation per step through verl's own v1 sync trainer path: verl's DAPO sampler vs ours, with/without cache.

Same simulated rewards as ``sampling_cache.py`` (mirrored-J pass rates, G=16, batch
128, policy drift), but the batches are built by verl 0.9.1's real code:
``PPOTrainerSync.prepare_step`` submits one fresh batch per step, then the sampler
(verl's built-in ``ReplayBuffer`` with ``algorithm.filter_groups``, or our
``FalconOnlineSampler`` from ``+plugin=falcon_h1r``) refills through
``_add_prompts_to_generate``. Storage is the real TransferQueue (on a private local Ray
cluster); the rollout engine is scripted (``verl_falcon_plugin.testing.verl_rollout``) and
its rollouts finish one poll after submission.

A "call" here is one ``generate_sequences`` dispatch (the trainer's batch, or one refill).

    python benchmarks/sampling_verl_path.py [--steps 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from verl_falcon_plugin.plugin_config import compose_ppo_config
from verl_falcon_plugin.sampling.simulator import DifficultyModel, mirrored_j_pass_rates
from verl_falcon_plugin.testing.verl_rollout import (
    ScriptedAgentLoop,
    clear_partitions,
    run_sync_steps,
    sync_trainer,
    transfer_queue_session,
)

RESULTS = Path(__file__).parent / "results"
BATCH = 128
GROUP = 16


class DriftingRewards:
    """Prompt ``index``: a prompt drawn in epoch order; rewards from the policy of its submission step."""

    def __init__(self, pass_rates: np.ndarray, drift: float, seed: int) -> None:
        self.logits = np.log(np.clip(pass_rates, 1e-6, 1 - 1e-6) / np.clip(1 - pass_rates, 1e-6, 1))
        self.drift = drift
        self.rng = np.random.default_rng(seed)
        self.order = np.concatenate([self.rng.permutation(len(pass_rates)) for _ in range(4)])

    def __call__(self, index: int, submit_step: int) -> tuple[float, ...]:
        policy_version = submit_step - 1
        p = 1 / (1 + np.exp(-(self.logits[self.order[index]] + self.drift * policy_version)))
        return tuple((self.rng.random(GROUP) < p).astype(float))


def with_overrides(base, overrides: dict):
    from omegaconf import OmegaConf, open_dict

    config = copy.deepcopy(base)
    with open_dict(config):
        for key, value in overrides.items():
            OmegaConf.update(config, key, value, merge=False)
    return config


def run(config, pass_rates, args) -> dict:
    clear_partitions()
    loop = ScriptedAgentLoop(DriftingRewards(pass_rates, args.drift, args.seed), group_size=GROUP)
    results = run_sync_steps(sync_trainer(config, loop), args.steps)
    assert all(len(r["uids"]) == BATCH for r in results)
    assert all(len(set(rw)) > 1 for r in results for rw in r["rewards"]), "a zero-advantage group was trained on"
    return {
        "calls_per_step": float(np.mean([r["calls"] for r in results])),
        "prompts_per_step": float(np.mean([r["prompts"] for r in results])),
        "mean_age": float(np.mean([np.mean(r["ages"]) for r in results])),
        "max_age": int(max(max(r["ages"]) for r in results)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", type=float, default=0.005)
    args = parser.parse_args()
    logging.getLogger("verl").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    pass_rates = mirrored_j_pass_rates(20_000, DifficultyModel(), np.random.default_rng(args.seed))
    base = compose_ppo_config(
        ["+plugin=falcon_h1r", f"data.train_batch_size={BATCH}", f"actor_rollout_ref.rollout.n={GROUP}"]
    )
    kwargs = "trainer.v1.sampler.sampler_kwargs"
    variants = {
        "verl built-in DAPO (discards surplus)": {
            "trainer.v1.sampler.custom_sampler.path": None,
            "trainer.v1.sampler.custom_sampler.name": None,
            "algorithm.filter_groups.enable": True,
            "algorithm.filter_groups.metric": "reward",
        },
        "falcon backfill, no cache": {f"{kwargs}.cache.max_groups": 0},
        "falcon backfill + cache (128, age 1) [default]": {},
        "falcon + cache (256, age 2)": {f"{kwargs}.cache.max_groups": 256, f"{kwargs}.cache.max_age_steps": 2},
    }
    report = {"settings": vars(args) | {"batch": BATCH, "group_size": GROUP}, "runs": {}}
    print(f"verl v1 sync trainer path, batch {BATCH}, G={GROUP}, {args.steps} steps")
    print(
        f"{'sampler':<46} {'calls/step':>10} {'prompts/step':>12} {'prompts vs verl':>15} "
        f"{'mean age':>8} {'max age':>7}"
    )
    baseline = None
    with transfer_queue_session():
        runs = {label: run(with_overrides(base, overrides), pass_rates, args) for label, overrides in variants.items()}
    for label, r in runs.items():
        baseline = baseline or r
        ratio = r["prompts_per_step"] / baseline["prompts_per_step"]
        print(
            f"{label:<46} {r['calls_per_step']:>10.2f} {r['prompts_per_step']:>12.1f} {ratio:>15.3f} "
            f"{r['mean_age']:>8.3f} {r['max_age']:>7}"
        )
        report["runs"][label] = r | {"prompts_vs_verl": ratio}

    RESULTS.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=RESULTS, prefix=".sampling_verl_path.json.")
    with os.fdopen(fd, "w") as handle:
        json.dump(report, handle, indent=1)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
    os.replace(tmp, RESULTS / "sampling_verl_path.json")
    print(f"wrote {RESULTS / 'sampling_verl_path.json'}")


if __name__ == "__main__":
    main()
