"""DeepConf online: token savings vs accuracy on synthetic trace populations.

Each problem is a population whose correct traces are more confident (see
``verl_falcon_plugin.testing.deepconf_traces``), with a per-problem pass rate. For η = 0.1
(aggressive, the Falcon-H1R setting) and η = 0.9 (conservative) it runs
Algorithm 2 with the paper's K=512, N_init=16, window 2048, and compares against
the baseline measured in the same run on the *same* traces: all K traces
generated in full, majority vote. Prints the token ratio and accuracies, and
writes ``benchmarks/results/deepconf_savings.{json,md}``.

    python benchmarks/deepconf_savings.py [--problems 16] [--budget 512] [--mean-length 4000]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from verl_falcon_plugin.testing.deepconf_traces import SyntheticPopulation
from vllm_plugins.deepconf import OnlineConfig, run_online, vote

RESULTS = Path(__file__).parent / "results"


def population(problem: int, problems: int, mean_length: int) -> SyntheticPopulation:
    # pass rates from 0.2 (hard) to 0.5; three quarters of the wrong traces agree on "41", so on the
    # hardest problems the plurality of all traces is wrong and only confidence can rescue the vote
    p_correct = 0.2 + 0.3 * problem / max(1, problems - 1)
    return SyntheticPopulation(
        p_correct=p_correct, wrong_answers=("41", "41", "41", "43"), mean_length=mean_length, seed=1000 + problem
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--budget", type=int, default=512)
    ap.add_argument("--n-init", type=int, default=16)
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--mean-length", type=int, default=4000)
    args = ap.parse_args()
    start = time.perf_counter()

    baseline_tokens, baseline_correct = 0, 0
    rows = {}
    for eta in (0.1, 0.9):
        tokens, correct, stopped = 0, {}, 0
        for problem in range(args.problems):
            config = OnlineConfig(args.budget, args.n_init, eta, args.window, batch_size=64, vote_window=args.window)
            result = run_online(population(problem, args.problems, args.mean_length), config)
            tokens += result.total_tokens
            stopped += result.num_stopped
            for method, answer in result.votes.items():
                correct[method] = correct.get(method, 0) + (answer == "42")
            if eta == 0.1:  # the baseline: the same traces (same seed), all generated in full
                full = population(problem, args.problems, args.mean_length).generate(args.budget, None, args.window)
                baseline_tokens += sum(t.num_tokens for t in full)
                baseline_correct += vote([t.answer for t in full], [t.confs for t in full], "majority") == "42"
        rows[eta] = dict(
            tokens=tokens,
            token_ratio=tokens / baseline_tokens,
            saved=1 - tokens / baseline_tokens,
            traces_stopped=stopped,
            accuracy={m: c / args.problems for m, c in correct.items()},
        )
    baseline = dict(tokens=baseline_tokens, accuracy_majority=baseline_correct / args.problems)

    lines = [
        f"DeepConf online savings, synthetic populations ({args.problems} problems, K={args.budget}, "
        f"N_init={args.n_init}, window={args.window}, mean length {args.mean_length})",
        f"baseline (all {args.budget} traces in full, majority vote): tokens {baseline_tokens}, "
        f"accuracy {baseline['accuracy_majority']:.3f}",
        "",
        "| eta | tokens / baseline | saved | traces stopped | " + " | ".join(rows[0.1]["accuracy"]) + " |",
        "|---|---|---|---|" + "---|" * len(rows[0.1]["accuracy"]),
    ]
    for eta, r in rows.items():
        accs = " | ".join(f"{a:.3f}" for a in r["accuracy"].values())
        lines.append(f"| {eta} | {r['token_ratio']:.3f} | {100 * r['saved']:.1f}% | {r['traces_stopped']} | {accs} |")
    text = "\n".join(lines)
    print(text)
    print(f"\n({time.perf_counter() - start:.1f}s)")
    RESULTS.mkdir(exist_ok=True)
    payload = dict(args=vars(args), baseline=baseline, deepconf={str(k): v for k, v in rows.items()})
    for name, data in (("deepconf_savings.json", json.dumps(payload, indent=2)), ("deepconf_savings.md", text + "\n")):
        tmp = RESULTS / f".{name}.tmp"
        tmp.write_text(data)
        os.replace(tmp, RESULTS / name)


if __name__ == "__main__":
    main()
