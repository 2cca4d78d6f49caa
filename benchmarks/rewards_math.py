"""Math reward throughput on what GRPO scores: groups of G = 16 responses sharing one gold.

    python benchmarks/rewards_math.py [--groups 32] [--repeats 3] [--seed 0] [--workers N]

The answer mix (stated, so the ratio can be judged): golds are 50% integers, 20% fractions,
10% radicals, 10% polynomials, 10% intervals; in each group the model is right with a
probability drawn from U(0.15, 0.85); a right answer is written like the gold 70% of the
time, otherwise in another spelling of the same value; a wrong answer is one of three
distractors with weights 6:3:1 (models repeat their mistakes); 5% of responses are cut off
before any answer. Most answers are boxed, some stated in a ``Final Answer`` line.

Both sides score the same responses in the same run, warm (imports paid, workers started):

* math-verify alone, once per response, in this process, as a user calls it:
  ``verify(parse("$gold$"), parse(response))``; also with each group's gold parsed once
  (``gold parsed once``), a stronger baseline;
* the project: :func:`verl_falcon_plugin.rewards.math.math_rewards` on the whole batch, a
  fresh verdict cache, and a :class:`MathVerifyPool` with one worker per core.

Prints rewards/s (min/median/max over repeats), the ratios, the share of verdicts decided by
tier 1 / the cache / math-verify, and every verdict that differs from math-verify alone with
the pair; writes ``benchmarks/results/rewards_math.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import time
from collections import Counter

import sympy

from verl_falcon_plugin.rewards.math import math_rewards
from verl_falcon_plugin.rewards.math_cache import VerdictCache
from verl_falcon_plugin.rewards.math_verify_runner import MathVerifyPool, default_worker_count, gold_for_parsing
from verl_falcon_plugin.testing.math_answers import spell_rational

G = 16
X = sympy.Symbol("x")


def _integer(rng):
    n = rng.randint(0, 999)
    return str(n), [str(n), f"{n}.0", f"n = {n}"], [str(n + d) for d in rng.sample([-2, -1, 1, 2, 10, 100], 3)]


def _fraction(rng):
    q = sympy.Rational(rng.randint(1, 60), rng.randint(2, 40))
    while q.q == 1:
        q = sympy.Rational(rng.randint(1, 60), rng.randint(2, 40))
    others = [spell_rational(q, rng)[0] for _ in range(3)]
    wrong = [spell_rational(w, rng)[0] for w in (q + 1, 1 / q, q * 2)]
    return f"\\frac{{{q.p}}}{{{q.q}}}", others, wrong


def _radical(rng):
    k, r = rng.randint(2, 9), rng.choice([2, 3, 5, 7])
    gold = f"{k}\\sqrt{{{r}}}"
    wrong = [f"{k + 1}\\sqrt{{{r}}}", f"\\sqrt{{{k * r}}}", f"{k * r}"]
    return gold, [f"\\sqrt{{{k * k * r}}}", f"{k} \\sqrt{r}"], wrong


def _polynomial(rng):
    a, b = rng.randint(1, 6), rng.randint(-6, 6)
    value = sympy.expand((X + a) * (X + b))
    wrong = [sympy.latex(sympy.expand((X + a) * (X + b + d))) for d in (1, -1, 2)]
    return sympy.latex(value), [sympy.latex(sympy.factor(value)), f"(x{b:+d})(x+{a})"], wrong


def _interval(rng):
    lo, hi = sorted(rng.sample(range(-9, 10), 2))
    gold = f"({lo},{hi}]"
    return gold, [f"\\left({lo}, {hi}\\right]", f"({lo}, {hi}]"], [f"[{lo},{hi}]", f"({lo},{hi})", f"({lo},{hi + 1}]"]


MIX = [(0.5, _integer), (0.2, _fraction), (0.1, _radical), (0.1, _polynomial), (0.1, _interval)]


def _response(answer: str | None, rng: random.Random) -> str:
    think = "<think>\nLet me set up the problem. " + "We try a few values. " * rng.randint(3, 12) + "\n</think>\n"
    if answer is None:
        return think + "We combine the two cases. I could not finish the computation."
    if rng.random() < 0.8:
        return think + f"Combining the cases, the answer is $\\boxed{{{answer}}}$."
    return think + f"Final Answer: The final answer is ${answer}$. I hope it is correct."


def build_groups(groups: int, seed: int) -> list[tuple[str, list[str], list[str]]]:
    """(gold, responses, answers written) per group of G."""
    rng = random.Random(seed)
    out = []
    for _ in range(groups):
        maker = rng.choices([m for _, m in MIX], [w for w, _ in MIX])[0]
        gold, equivalents, distractors = maker(rng)
        accuracy = rng.uniform(0.15, 0.85)
        answers = []
        for _ in range(G):
            if rng.random() < 0.05:
                answers.append(None)
            elif rng.random() < accuracy:
                answers.append(gold if rng.random() < 0.7 else rng.choice(equivalents))
            else:
                answers.append(rng.choices(distractors, [6, 3, 1])[0])
        out.append((gold, [_response(a, rng) for a in answers], answers))
    return out


def math_verify_alone(batch: list[tuple[str, str]], gold_once: bool) -> list[bool]:
    from math_verify import parse, verify

    verdicts, parsed = [], {}
    for gold, response in batch:
        if not gold_once or gold not in parsed:
            parsed[gold] = parse(gold_for_parsing(gold), parsing_timeout=None)
        verdicts.append(bool(verify(parsed[gold], parse(response, parsing_timeout=None), timeout_seconds=None)))
    return verdicts


def _stats(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_worker_count())
    args = parser.parse_args()
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    groups = build_groups(args.groups, args.seed)
    batch = [(gold, r) for gold, responses, _ in groups for r in responses]
    written = [a for _, _, answers in groups for a in answers if a is not None]
    non_integer = sum(not a.replace("n = ", "").replace(".0", "").isdigit() for a in written) / len(written)
    distinct = sum(len(set(a for a in answers if a)) for _, _, answers in groups) / len(groups)

    math_verify_alone(batch[:5], gold_once=False)  # sympy and the LaTeX grammar imported outside the timing
    rates: dict[str, list[float]] = {"math-verify alone": [], "math-verify alone, gold parsed once": [], "project": []}
    for repeat in range(args.repeats):
        for name, gold_once in (("math-verify alone", False), ("math-verify alone, gold parsed once", True)):
            start = time.perf_counter()
            alone = math_verify_alone(batch, gold_once)
            rates[name].append(len(batch) / (time.perf_counter() - start))
        pool = MathVerifyPool(max_workers=args.workers)
        try:
            pool.start_all()  # worker start-up (imports) outside the timing, as for the baseline
            start = time.perf_counter()
            ours = math_rewards([r for _, r in batch], [g for g, _ in batch], pool=pool, cache=VerdictCache())
            rates["project"].append(len(batch) / (time.perf_counter() - start))
        finally:
            pool.close()
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()))

    decided = Counter(
        "tier 1" if r.metadata.get("tier") == 1 else "cache" if r.metadata.get("cached") else "math-verify"
        for r in ours
    )
    differ = [
        (gold, r.metadata.get("extracted"), mv, r.status.value)
        for (gold, _), mv, r in zip(batch, alone, ours)
        if mv != (r.score == 1.0)
    ]
    ratio = {k: statistics.median(rates["project"]) / statistics.median(v) for k, v in rates.items() if k != "project"}
    print(f"\n{len(groups)} groups of {G} = {len(batch)} responses (seed {args.seed}), {args.workers} worker(s)")
    print(f"answers: {non_integer:.0%} non-integer, {distinct:.1f} distinct answers per group of {G}")
    for name, values in rates.items():
        s = _stats(values)
        print(f"{name:38s} {s['median']:8.1f} rewards/s (min {s['min']:.1f}, max {s['max']:.1f})")
    for name, value in ratio.items():
        print(f"speed-up, project / {name}: {value:.2f}x")
    print("decided by: " + ", ".join(f"{k} {v / len(ours):.0%}" for k, v in decided.most_common()))
    print(f"verdicts differing from math-verify alone: {len(differ)} of {len(batch)}")
    for gold, extracted, mv, ours_status in differ:
        verdict = "correct" if mv else "wrong"
        print(f"  gold {gold!r} answer {extracted!r}: math-verify {verdict}, project {ours_status}")
    out = os.path.join(os.path.dirname(__file__), "results", "rewards_math.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".tmp", "w") as f:
        summary = {"responses": len(batch), "groups": len(groups), "workers": args.workers, "seed": args.seed}
        summary.update(non_integer_share=non_integer, distinct_answers_per_group=distinct)
        summary.update(rates={k: _stats(v) for k, v in rates.items()}, speedup=ratio, decided_by=dict(decided))
        json.dump({**summary, "differing_verdicts": differ}, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
