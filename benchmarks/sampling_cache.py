"""Generation calls per training step: plain backfill vs backfill + generation cache (simulated).

Setup (Falcon-H1R Sec. 3.1-3.2): G = 16 rollouts per prompt, 128 groups per batch,
binary rewards; per-prompt pass rates from the paper's RL-data filtering applied to a
Beta(0.3, 1.5) prior (see ``verl_falcon_plugin.sampling.simulator``), which gives the
mirrored-J shape (many hard prompts, few easy). The policy improves by
``--drift`` logits per step, so a cached group's rewards come from an older policy.

A generation call is one call of the rollout engine for ``gen_batch_prompts`` prompts.
Baseline and cache runs use the same generator seed, in the same process.

    python benchmarks/sampling_cache.py [--steps 300] [--seed 0]

Writes benchmarks/results/sampling_cache.{json,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from verl_falcon_plugin.sampling import CacheConfig, OnlineBatcher, SamplingConfig
from verl_falcon_plugin.sampling.simulator import DifficultyModel, SyntheticGenerator, mirrored_j_pass_rates

RESULTS = Path(__file__).parent / "results"
BATCH = 128
GROUP = 16


def run(pass_rates, cache: CacheConfig, steps: int, gen_batch: int, drift: float, seed: int) -> dict:
    generator = SyntheticGenerator(pass_rates, group_size=GROUP, drift_per_step=drift, seed=seed)
    config = SamplingConfig(cache=cache, max_generation_calls_per_step=64, seed=seed)
    batcher = OnlineBatcher(config, generator, batch_size=BATCH, gen_batch_prompts=gen_batch)
    metrics = [batcher.next_batch(version).metrics for version in range(steps)]
    return {
        "calls_per_step": [m.generation_calls for m in metrics],
        "mean_calls": float(np.mean([m.generation_calls for m in metrics])),
        "mean_prompts": float(np.mean([m.prompts_generated for m in metrics])),
        "mean_age": float(np.mean([m.mean_age for m in metrics])),
        "zero_adv_fraction": float(np.mean([m.zero_advantage_fraction for m in metrics])),
        "evicted_age": int(sum(m.cache_evicted_age for m in metrics)),
        "evicted_size": int(sum(m.cache_evicted_size for m in metrics)),
        "evicted_refresh": int(sum(m.cache_evicted_refresh for m in metrics)),
        "discarded": int(sum(m.discarded_surplus for m in metrics)),
    }


def describe_distribution(pass_rates: np.ndarray) -> str:
    counts, _ = np.histogram(pass_rates, bins=10, range=(0, 1))
    zero = np.mean((1 - pass_rates) ** GROUP + pass_rates**GROUP)
    shares = " ".join(f"{c / len(pass_rates):.2f}" for c in counts)
    return f"pass-rate deciles (share of prompts): {shares}\nexpected zero-advantage fraction at G={GROUP}: {zero:.3f}"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
    os.replace(tmp, path)


def plot(series: dict[str, list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, cumulative) = plt.subplots(1, 2, figsize=(12, 4))
    window = 10
    for label, calls in series.items():
        calls = np.asarray(calls, dtype=float)
        smooth = np.convolve(calls, np.ones(window) / window, mode="valid")
        (line,) = ax.plot(np.arange(window - 1, len(calls)), smooth, label=f"{label} (mean {calls.mean():.2f})")
        ax.plot(np.arange(len(calls)), calls, alpha=0.15, color=line.get_color(), drawstyle="steps-mid")
        cumulative.plot(np.cumsum(calls), color=line.get_color(), label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("generation calls per step")
    ax.set_title(f"calls per step (faint: raw, bold: {window}-step mean)")
    ax.legend()
    cumulative.set_xlabel("training step")
    cumulative.set_ylabel("cumulative generation calls")
    cumulative.set_title(f"batch {BATCH} groups, G={GROUP}, {BATCH} prompts per call")
    cumulative.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drift", type=float, default=0.005, help="policy improvement, logits per step")
    args = parser.parse_args()

    pass_rates = mirrored_j_pass_rates(20_000, DifficultyModel(), np.random.default_rng(args.seed))
    print(describe_distribution(pass_rates))
    report: dict = {"settings": vars(args) | {"batch": BATCH, "group_size": GROUP}}

    print(f"\n== plain backfill vs backfill + cache (max_groups=128, max_age_steps=1), {args.steps} steps ==")
    print(
        f"{'gen batch':>9} {'plain calls/step':>16} {'cache calls/step':>16} {'calls ratio':>11} {'fewer calls':>11} "
        f"{'prompts ratio':>13} {'cache mean age':>14}"
    )
    headline = {}
    for gen_batch in (128, 64, 32):
        plain = run(pass_rates, CacheConfig(max_groups=0), args.steps, gen_batch, args.drift, args.seed)
        cached = run(
            pass_rates, CacheConfig(max_groups=128, max_age_steps=1), args.steps, gen_batch, args.drift, args.seed
        )
        ratio = cached["mean_calls"] / plain["mean_calls"]
        print(
            f"{gen_batch:>9} {plain['mean_calls']:>16.3f} {cached['mean_calls']:>16.3f} {ratio:>11.3f} "
            f"{1 - ratio:>10.1%} {cached['mean_prompts'] / plain['mean_prompts']:>13.3f} {cached['mean_age']:>14.3f}"
        )
        report[f"gen_batch_{gen_batch}"] = {"plain": plain, "cache": cached, "calls_ratio": ratio}
        if gen_batch == BATCH:
            headline = {"plain backfill": plain["calls_per_step"], "backfill + cache": cached["calls_per_step"]}
    print(f"zero-advantage fraction of generated groups: {plain['zero_adv_fraction']:.3f}")

    print(f"\n== staleness sweep (gen batch {BATCH} and {2 * BATCH} prompts per call) ==")
    print(
        f"{'gen batch':>9} {'max_groups':>10} {'max_age':>7} {'refresh':>7} {'calls/step':>10} {'vs plain':>8} "
        f"{'mean age':>8} {'evict age':>9} {'evict size':>10}"
    )
    sweep = []
    for gen_batch in (BATCH, 2 * BATCH):
        plain = run(pass_rates, CacheConfig(max_groups=0), args.steps, gen_batch, args.drift, args.seed)
        for max_groups in (64, 128, 512):
            for max_age, refresh in ((0, None), (1, None), (2, None), (4, None), (8, None), (8, 4)):
                cache = CacheConfig(max_groups=max_groups, max_age_steps=max_age, refresh_every_steps=refresh)
                r = run(pass_rates, cache, args.steps, gen_batch, args.drift, args.seed)
                print(
                    f"{gen_batch:>9} {max_groups:>10} {max_age:>7} {str(refresh):>7} {r['mean_calls']:>10.3f} "
                    f"{r['mean_calls'] / plain['mean_calls']:>8.3f} {r['mean_age']:>8.3f} {r['evicted_age']:>9} "
                    f"{r['evicted_size']:>10}"
                )
                sweep.append(
                    {
                        "gen_batch": gen_batch,
                        "max_groups": max_groups,
                        "max_age": max_age,
                        "refresh": refresh,
                        "calls_per_step": r["mean_calls"],
                        "plain_calls_per_step": plain["mean_calls"],
                        "mean_age": r["mean_age"],
                        "evicted_age": r["evicted_age"],
                        "evicted_size": r["evicted_size"],
                    }
                )
    report["staleness_sweep"] = sweep

    write_atomic(RESULTS / "sampling_cache.json", json.dumps(report, indent=1).encode())
    plot(headline, RESULTS / "sampling_cache.png")
    print(f"\nwrote {RESULTS / 'sampling_cache.json'} and {RESULTS / 'sampling_cache.png'}")


if __name__ == "__main__":
    main()
