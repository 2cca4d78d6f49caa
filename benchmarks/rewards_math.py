"""Math reward throughput: two-tier (exact tier 1, math-verify only when needed) vs math-verify alone.

    python benchmarks/rewards_math.py [--n 1500] [--seed 0]

The corpus imitates a GRPO math batch: mostly integer answers (AIME/AMC-style), some
fractions, surds, expressions and intervals, equivalent rewrites, near misses, and a few
responses with no boxed answer. Both sides run serially on one core:

* math-verify alone: ``verify(parse(\\boxed{gold}), parse(answer part))`` in this process,
  its cheapest possible form (no timeout machinery, no IPC);
* two-tier: :func:`verl_falcon_plugin.rewards.math.math_reward`, whose tier 2 goes to a
  one-worker :class:`MathVerifyPool` (a process, so its deadline holds from any thread).

Prints rewards/s for each, the ratio, and every verdict that differs, then writes
``benchmarks/results/rewards_math.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from collections import Counter

from verl_falcon_plugin.rewards.extract import answer_part
from verl_falcon_plugin.rewards.math import math_reward
from verl_falcon_plugin.rewards.math_verify_runner import MathVerifyPool, verify_in_this_process

PREAMBLE = (
    "We combine the two cases computed above. The count of valid configurations follows from "
    "the symmetry argument, and checking small cases confirms the pattern."
)


def _response(answer: str | None, rng: random.Random) -> str:
    think = "<think>\nLet me set up the problem. " + "We try a few values. " * rng.randint(3, 12) + "\n</think>\n"
    if answer is None:
        return think + PREAMBLE + " I could not finish the computation."
    return think + PREAMBLE + f" Therefore, the final answer is $\\boxed{{{answer}}}$."


def _integer_item(rng: random.Random) -> tuple[str, str | None]:
    gold = rng.randint(0, 999)
    roll = rng.random()
    if roll < 0.45:
        return str(gold), str(gold)
    if roll < 0.50:
        return str(gold), rng.choice([f"{gold}.0", f"{gold}\\text{{ ways}}", f"{gold}^\\circ", f"n={gold}"])
    if roll < 0.95:
        return str(gold), str(gold + rng.choice([-3, -2, -1, 1, 2, 5, 10, 100]))
    return str(gold), None


def _fraction_item(rng: random.Random) -> tuple[str, str | None]:
    a, b = rng.randint(1, 50), rng.randint(2, 60)
    gold = f"\\frac{{{a}}}{{{b}}}"
    roll = rng.random()
    if roll < 0.35:
        return gold, gold
    if roll < 0.5:
        return gold, rng.choice([f"\\dfrac{{{2 * a}}}{{{2 * b}}}", f"{a}/{b}"])
    return gold, f"\\frac{{{a + 1}}}{{{b}}}"


def _symbolic_item(rng: random.Random) -> tuple[str, str | None]:
    k = rng.randint(2, 9)
    items = [
        (f"{k}\\sqrt{{2}}", f"\\sqrt{{{2 * k * k}}}"),
        (f"{k}\\sqrt{{2}}", f"{k}\\sqrt{{2}}"),
        (f"{k}\\sqrt{{2}}", f"{k}\\sqrt{{3}}"),
        (f"x^2+{2 * k}x+{k * k}", f"(x+{k})^2"),
        (f"x^2+{2 * k}x+{k * k}", f"(x+{k + 1})^2"),
        (f"({-k},{k}]", f"({-k},{k}]"),
        (f"({-k},{k}]", f"[{-k},{k}]"),
        (f"\\{{1,{k}\\}}", f"\\{{{k},1\\}}"),
        (f"\\frac{{\\pi}}{{{k}}}", f"\\frac{{1}}{{{k}}}\\pi"),
        (f"({k},\\infty)", f"({k},\\infty)"),
        (f"(-\\infty,{-k})\\cup({k},\\infty)", f"({k},\\infty)\\cup(-\\infty,{-k})"),
        (f"\\sqrt[3]{{{k}}}", f"{k}^{{1/3}}"),
        (f"\\log_2 {2 ** k}", f"{k}"),
        ("\\text{(C)}", rng.choice(["C", "\\text{(C)}", "\\text{(D)}"])),
    ]
    return rng.choice(items)


def build_corpus(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    corpus = []
    for _ in range(n):
        roll = rng.random()
        maker = _integer_item if roll < 0.7 else _fraction_item if roll < 0.85 else _symbolic_item
        gold, answer = maker(rng)
        corpus.append((gold, _response(answer, rng)))
    return corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    corpus = build_corpus(args.n, args.seed)

    verify_in_this_process("1", "\\boxed{1}")  # import sympy & warm caches outside the timing
    start = time.perf_counter()
    alone = [verify_in_this_process(gold, answer_part(response)) for gold, response in corpus]
    alone_s = time.perf_counter() - start

    pool = MathVerifyPool(max_workers=1)
    math_reward("<think>x</think>\\boxed{2^{1/3}}", "\\sqrt[3]{2}", pool=pool)  # start the worker outside the timing
    start = time.perf_counter()
    two_tier = [math_reward(response, gold, pool=pool) for gold, response in corpus]
    two_tier_s = time.perf_counter() - start
    pool.close()

    tiers = Counter(r.metadata.get("tier") for r in two_tier)
    statuses = Counter(r.status.value for r in two_tier)
    differ = [
        (gold, r.metadata.get("extracted"), mv, r.status.value)
        for (gold, _), mv, r in zip(corpus, alone, two_tier)
        if mv != (r.score == 1.0)
    ]
    ratio = (len(corpus) / two_tier_s) / (len(corpus) / alone_s)
    print(f"corpus: {len(corpus)} responses (seed {args.seed}); two-tier verdicts {dict(statuses)}")
    print(f"two-tier decided by tier 1: {tiers.get(1, 0)}, sent to math-verify: {tiers.get(2, 0)}")
    print(f"math-verify alone : {len(corpus) / alone_s:9.1f} rewards/s ({alone_s:.2f} s)")
    print(f"two-tier          : {len(corpus) / two_tier_s:9.1f} rewards/s ({two_tier_s:.2f} s)")
    print(f"speed-up two-tier / math-verify alone: {ratio:.2f}x")
    print(f"verdicts differing from math-verify alone: {len(differ)} of {len(corpus)}")
    for gold, extracted, mv, ours in differ[:20]:
        print(f"  gold {gold!r} answer {extracted!r}: math-verify {'correct' if mv else 'wrong'}, two-tier {ours}")
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    out = os.path.join(os.path.dirname(__file__), "results", "rewards_math.json")
    with open(out + ".tmp", "w") as f:
        json.dump(
            {
                "n": len(corpus),
                "seed": args.seed,
                "math_verify_alone_per_s": len(corpus) / alone_s,
                "two_tier_per_s": len(corpus) / two_tier_s,
                "speedup": ratio,
                "tier_counts": dict(tiers),
                "statuses": dict(statuses),
                "differing_verdicts": differ,
            },
            f,
            indent=1,
        )
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
