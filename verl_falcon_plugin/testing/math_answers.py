"""Seeded math answer pairs across the notations graders meet, with the truth computed by sympy.

Used by the differential test against math-verify and by the math reward benchmark. Each
pair is built from *values* (sympy numbers, expressions, tuples, sets, intervals, letters);
the gold and the answer are spellings of those values chosen at random, and ``truth`` is the
comparison of the values, never of the strings and never by the code under test. Where the
truth is a grading convention rather than arithmetic (``28`` answering ``28\\%``, a unit
word, a currency sign), the notation name says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

import sympy

X = sympy.Symbol("x")


@dataclass(frozen=True)
class AnswerPair:
    gold: str
    answer: str  # the final answer as the model writes it (before wrapping in a response)
    truth: bool  # the two values are equal (or equal by the notation's grading convention)
    notation: str
    exact_different: bool = False  # truth is False and both values are exact numbers sympy proves unequal


# ------------------------------------------------------------------ spellings of a rational number
def _frac(num: int, den: int, rng: random.Random) -> str:
    cmd = rng.choice(["\\frac", "\\dfrac", "\\tfrac"])
    if num < 0:
        return rng.choice([f"-{cmd}{{{-num}}}{{{den}}}", f"{cmd}{{{num}}}{{{den}}}", f"{cmd}{{{-num}}}{{-{den}}}"])
    return f"{cmd}{{{num}}}{{{den}}}"


def _decimal(q: sympy.Rational, rng: random.Random) -> str | None:
    den = q.q
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den != 1:
        return None  # not a terminating decimal
    text = format(sympy.Float(q, 30), "f").rstrip("0").rstrip(".") or "0"
    if "." in text and rng.random() < 0.3:
        text += "0" * rng.randint(1, 2)  # trailing zeros
    return text


def spell_rational(q: sympy.Rational, rng: random.Random) -> tuple[str, str]:
    """(spelling, notation) of a rational, in one of the usual notations."""
    styles = ["frac", "slash"]
    if q.q == 1:
        styles = ["integer"] * 3 + (["thousands"] if bool(abs(q) >= 1000) else []) + ["sci"] * bool(abs(q) >= 1000)
    if _decimal(q, rng) is not None:
        styles += ["decimal", "decimal"]
    if q.q != 1 and bool(abs(q) > 1):
        styles.append("mixed")
    style = rng.choice(styles)
    p, d = int(q.p), int(q.q)
    if style == "integer":
        return str(p), "integer"
    if style == "thousands":
        digits = f"{abs(p):,}"
        sep = rng.choice([",", "{,}", "\\,"])
        return ("-" if p < 0 else "") + digits.replace(",", sep), "thousands separator"
    if style == "sci":
        exponent = len(str(abs(p))) - 1
        mantissa = _decimal(sympy.Rational(p, 10**exponent), rng)
        times = rng.choice(["\\times", "\\cdot"])
        return f"{mantissa}{times}10^{{{exponent}}}", "scientific notation"
    if style == "decimal":
        return _decimal(q, rng), "decimal"
    if style == "slash":
        return (f"-{-p}/{d}" if p < 0 and rng.random() < 0.5 else f"{p}/{d}"), "fraction a/b"
    if style == "mixed":
        whole, rest = divmod(abs(p), d)
        sign = "-" if p < 0 else ""
        return f"{sign}{whole}{rng.choice(['', ' '])}\\frac{{{rest}}}{{{d}}}", "mixed number"
    return _frac(p, d, rng), "fraction"


def _random_rational(rng: random.Random) -> sympy.Rational:
    kind = rng.random()
    if kind < 0.35:
        return sympy.Rational(rng.randint(-50, 2000))
    if kind < 0.7:
        return sympy.Rational(rng.randint(-30, 60), rng.randint(2, 24))
    return sympy.Rational(rng.randint(-999, 9999), rng.choice([2, 4, 5, 8, 10, 20, 100]))


def _nearby_rational(q: sympy.Rational, rng: random.Random) -> sympy.Rational:
    return rng.choice([q + 1, q - 1, -q if q else q + 2, q * 2, 1 / q if q else q + 3, q + sympy.Rational(1, 10)])


# ------------------------------------------------------------------ generators
# each returns (gold value, answer value, gold spelling, answer spelling, notation)
def _numbers(rng: random.Random, same: bool):
    q = _random_rational(rng)
    a = q if same else _nearby_rational(q, rng)
    (gold, _), (answer, notation) = spell_rational(q, rng), spell_rational(a, rng)
    return q, a, gold, answer, notation


def _decorated(rng: random.Random, same: bool):
    n = sympy.Rational(rng.randint(1, 500))
    a = n if same else n + rng.randint(1, 9)
    kind = rng.choice(["percent", "currency", "units", "degrees"])
    if kind == "percent":
        gold = f"{n}\\%"
        answer = rng.choice([f"{a}\\%", f"{a}", f"{a} \\%"])
        if same and rng.random() < 0.3:
            answer = _decimal(a / 100, rng) or str(a / 100)
        return n, a, gold, answer, "percent (convention)"
    if kind == "currency":
        gold = rng.choice([f"\\${n}", f"{n}"])
        answer = rng.choice([f"\\${a}", f"\\${a}.00", f"{a}", f"{a}\\text{{ dollars}}"])
        return n, a, gold, answer, "currency (convention)"
    if kind == "units":
        unit = rng.choice(["cm", "meters", "square units", "km"])
        gold = rng.choice([f"{n}\\text{{ {unit}}}", f"{n}"])
        answer = rng.choice([f"{a}\\text{{ {unit}}}", f"{a}\\ \\text{{{unit}}}", f"{a}", f"\\text{{{a} {unit}}}"])
        return n, a, gold, answer, "units and \\text (convention)"
    gold = rng.choice([f"{n}^\\circ", f"{n}^{{\\circ}}", f"{n}"])
    answer = rng.choice([f"{a}^\\circ", f"{a}^{{\\circ}}", f"{a}", f"{a}\\text{{ degrees}}"])
    return n, a, gold, answer, "degrees (convention)"


def _decimal_comma(rng: random.Random, same: bool):
    q = sympy.Rational(rng.randint(1, 999), rng.choice([10, 100]))
    a = q if same else q + sympy.Rational(1, 10)
    comma = (_decimal(a, rng) or "0").replace(".", rng.choice([",", "{,}"]))
    return q, a, _decimal(q, rng), comma, "decimal comma (convention)"


def _radicals(rng: random.Random, same: bool):
    k, r = rng.randint(1, 9), rng.choice([2, 3, 5, 6, 7])
    value = k * sympy.sqrt(r)
    other = value if same else rng.choice([(k + 1) * sympy.sqrt(r), k * sympy.sqrt(r + 1), value + 1])

    def spell(v: Any) -> str:
        coeff, rad = v.as_coeff_Mul()
        if rng.random() < 0.4 and coeff.is_Integer and rad.is_Pow:
            return f"\\sqrt{{{int(coeff**2 * rad.base)}}}"
        return sympy.latex(v)

    return value, other, spell(value), spell(other), "radicals"


def _pi(rng: random.Random, same: bool):
    q = sympy.Rational(rng.randint(1, 11), rng.choice([1, 2, 3, 4, 6]))
    a = q if same else q + sympy.Rational(1, rng.choice([2, 3, 4]))

    def spell(v: sympy.Rational) -> str:
        p, d = int(v.p), int(v.q)
        options = [f"\\frac{{{p}\\pi}}{{{d}}}", f"\\frac{{{p}}}{{{d}}}\\pi", f"{p}\\pi/{d}"] if d > 1 else []
        return rng.choice(options or [f"{p}\\pi" if p != 1 else "\\pi"])

    return q * sympy.pi, a * sympy.pi, spell(q), spell(a), "multiples of pi"


def _intervals(rng: random.Random, same: bool):
    lo, hi = sorted(rng.sample(range(-20, 20), 2))
    left, right = rng.choice("(["), rng.choice(")]")
    if rng.random() < 0.3:
        lo, left = "-\\infty", "("
    elif rng.random() < 0.3:
        hi, right = "\\infty", ")"
    value = (left, lo, hi, right)
    if same:
        other = value
    else:
        choice = rng.random()
        flipped = {"(": "[", "[": "(", ")": "]", "]": ")"}
        if choice < 0.5 and lo != "-\\infty":
            other = (flipped[left], lo, hi, right)
        else:
            other = (left, lo, hi + 1 if hi != "\\infty" else 99, right)

    def spell(v: tuple) -> str:
        opening, a, b, closing = v
        if rng.random() < 0.3:
            return f"\\left{opening}{a}, {b}\\right{closing}"
        return f"{opening}{a},{b}{closing}"

    return value, other, spell(value), spell(other), "intervals"


def _collections(rng: random.Random, same: bool):
    kind = rng.choice(["set", "tuple", "tuples"])
    if kind == "set":
        items = rng.sample(range(-9, 20), rng.randint(2, 4))
        other = items if same else items[:-1] + [items[-1] + 1]
        perm = rng.sample(other, len(other))
        return (
            frozenset(items),
            frozenset(other),
            "\\{" + ",".join(map(str, items)) + "\\}",
            ("\\{" + ", ".join(map(str, perm)) + "\\}"),
            "sets",
        )
    if kind == "tuple":
        items = [rng.randint(-9, 9) for _ in range(rng.randint(2, 3))]
        other = items if same else list(reversed(items)) if items != items[::-1] else [items[0] + 1] + items[1:]
        return (
            tuple(items),
            tuple(other),
            "(" + ",".join(map(str, items)) + ")",
            ("(" + ", ".join(map(str, other)) + ")"),
            "tuples",
        )
    pairs = [(rng.randint(-5, 5), rng.randint(-5, 5)) for _ in range(2)]
    while pairs[0] == pairs[1]:
        pairs[1] = (pairs[1][0] + 1, pairs[1][1])
    other = list(reversed(pairs)) if same else [pairs[0], (pairs[1][0], pairs[1][1] + 1)]
    spell = lambda ps: ",".join(f"({a},{b})" for a, b in ps)  # noqa: E731
    return frozenset(pairs), frozenset(other), spell(pairs), spell(other), "list of tuples (any order)"


def _equations(rng: random.Random, same: bool):
    n = rng.randint(-20, 20)
    a = n if same else n + rng.choice([-2, -1, 1, 3])
    var = rng.choice("xyk")
    gold, answer = rng.choice([(f"{var}={n}", f"{a}"), (f"{n}", f"{var}={a}"), (f"{var}={n}", f"{var} = {a}")])
    return n, a, gold, answer, "x = ... equations"


def _letters(rng: random.Random, same: bool):
    letter = rng.choice("ABCDE")
    other = letter if same else rng.choice([c for c in "ABCDE" if c != letter])
    wrap = ["{}", "({})", "\\text{{({})}}", "\\textbf{{({})}}", "\\text{{{}}}", "\\mathrm{{({})}}"]
    return letter, other, rng.choice(wrap[:3]).format(letter), rng.choice(wrap).format(other), "multiple choice"


def _matrices(rng: random.Random, same: bool):
    rows = [[rng.randint(-5, 9) for _ in range(2)] for _ in range(rng.randint(1, 2))]
    other = [r[:] for r in rows]
    if not same:
        other[-1][-1] += 1
    env = rng.choice(["pmatrix", "bmatrix"])

    def spell(m: list[list[int]]) -> str:
        return f"\\begin{{{env}}}" + "\\\\".join("&".join(map(str, r)) for r in m) + f"\\end{{{env}}}"

    return str(rows), str(other), spell(rows), spell(other), "matrices"


def _polynomials(rng: random.Random, same: bool):
    a, b = rng.randint(-5, 5) or 1, rng.randint(-5, 5)
    value = sympy.expand((X + a) * (X + b))
    other = value if same else sympy.expand((X + a) * (X + b + rng.choice([-1, 1])))
    gold = sympy.latex(value)
    answer = rng.choice([sympy.latex(sympy.factor(other)), sympy.latex(other), sympy.latex(sympy.expand(other))])
    return value, other, gold, answer, "polynomials"


def _near_misses(rng: random.Random, same: bool):
    n = rng.randint(20, 200)
    kind = rng.choice(["factorial", "power", "ten"])
    if kind == "factorial":
        return (1 / sympy.factorial(n), 1 / sympy.factorial(n + 2), f"\\frac{{1}}{{{n}!}}", f"\\frac{{1}}{{{n + 2}!}}")
    if kind == "power":
        gold, answer = f"\\frac{{1}}{{2^{{{n}}}}}", f"2^{{-{n - 1}}}"
        return sympy.Rational(1, 2**n), sympy.Rational(1, 2 ** (n - 1)), gold, answer
    k = rng.randint(8, 14)
    return sympy.Rational(1, 10**k), sympy.Rational(1, 10 ** (k + 1)), f"10^{{-{k}}}", f"10^{{-{k + 1}}}"


GENERATORS: dict[str, tuple[float, Callable]] = {
    "numbers": (0.34, _numbers),
    "decorated": (0.1, _decorated),
    "decimal comma": (0.03, _decimal_comma),
    "radicals": (0.07, _radicals),
    "pi": (0.06, _pi),
    "intervals": (0.07, _intervals),
    "collections": (0.08, _collections),
    "equations": (0.06, _equations),
    "letters": (0.06, _letters),
    "matrices": (0.05, _matrices),
    "polynomials": (0.07, _polynomials),
    "near misses": (0.04, None),
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, sympy.Basic) and isinstance(b, sympy.Basic):
        return sympy.simplify(a - b) == 0
    return a == b


def answer_pairs(n: int, seed: int) -> list[AnswerPair]:
    """``n`` pairs, about half equal, across :data:`GENERATORS` (weights), reproducible from ``seed``."""
    rng = random.Random(seed)
    names = list(GENERATORS)
    weights = [GENERATORS[name][0] for name in names]
    pairs = []
    while len(pairs) < n:
        name = rng.choices(names, weights)[0]
        if name == "near misses":
            gv, av, gold, answer = _near_misses(rng, False)
            pairs.append(AnswerPair(gold, answer, False, "near miss (exact)", exact_different=gv != av))
            continue
        gv, av, gold, answer, notation = GENERATORS[name][1](rng, rng.random() < 0.5)
        truth = _equal(gv, av)
        exact = truth is False and all(isinstance(v, sympy.Basic) and v.is_number for v in (gv, av))
        pairs.append(AnswerPair(gold, answer, truth, notation, exact_different=exact))
    return pairs


RESPONSE_FORMS = ("boxed", "dollar boxed", "final answer line", "after the last box", "final answer is", "answer:")


def response_for(pair: AnswerPair, rng: random.Random) -> tuple[str, str]:
    """(response, form): the answer in one of the ways models state it, after a think block."""
    think = "<think>\nLet me work this out. We try small cases first.\n</think>\n"
    form = rng.choice(RESPONSE_FORMS)
    a = pair.answer
    if form == "boxed":
        return think + f"Therefore the answer is \\boxed{{{a}}}.", form
    if form == "dollar boxed":
        return think + f"So we get $\\boxed{{{a}}}$", form
    if form == "final answer line":
        return think + f"Final Answer: The final answer is ${a}$. I hope it is correct.", form
    if form == "after the last box":
        return think + f"A first guess was $\\boxed{{0}}$. Checking again, the final answer is ${a}$.", form
    if form == "answer:":
        return think + f"We check every case.\nAnswer: {a}", form
    return think + f"Hence the final answer is ${a}$", form
