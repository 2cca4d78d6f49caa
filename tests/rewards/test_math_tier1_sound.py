"""Soundness of tier 1 against sympy (a reference we did not write): on random expressions
spelled by ``sympy.latex``, an EQUAL verdict is never given to different values and a
DIFFERENT verdict never to equal ones. Tier 1 may abstain (UNDECIDED) as often as it likes."""

from __future__ import annotations

import random

import sympy

from verl_falcon_plugin.rewards.math_tier1 import Tier1Verdict, compare

x, y = sympy.symbols("x y")


def _random_expr(rng: random.Random, depth: int) -> sympy.Expr:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(
            [
                sympy.Integer(rng.randint(-9, 20)),
                sympy.Rational(rng.randint(1, 9), rng.randint(2, 9)),
                sympy.sqrt(rng.randint(2, 50)),
                x,
                y,
                sympy.pi,
            ]
        )
    a, b = _random_expr(rng, depth - 1), _random_expr(rng, depth - 1)
    op = rng.choice(["add", "sub", "mul", "div", "pow"])
    if op == "div" and b != 0:
        return a / b
    if op == "pow":
        return a ** rng.randint(0, 3)
    return {"add": a + b, "sub": a - b, "mul": a * b}.get(op, a + b)


def test_tier1_verdicts_agree_with_sympy():
    rng = random.Random(1234)
    decided = {Tier1Verdict.EQUAL: 0, Tier1Verdict.DIFFERENT: 0}
    for _ in range(60):
        a = _random_expr(rng, 3)
        rewrites = [
            sympy.expand(a),
            sympy.factor(a),
            sympy.together(a),
            a + 1,
            a * 2,
            a + sympy.sqrt(2),
            _random_expr(rng, 2),
        ]
        for b in rewrites:
            verdict = compare(sympy.latex(a), sympy.latex(b))
            if verdict is Tier1Verdict.UNDECIDED:
                continue
            equal = sympy.simplify(a - b) == 0
            assert (verdict is Tier1Verdict.EQUAL) is equal, (sympy.latex(a), sympy.latex(b), verdict)
            decided[verdict] += 1
    # the check is not vacuous: tier 1 decided many pairs both ways (DIFFERENT only for exact constants and
    # polynomials: rational functions, pi and decimals go to math-verify)
    assert decided[Tier1Verdict.EQUAL] > 100 and decided[Tier1Verdict.DIFFERENT] > 40, decided
