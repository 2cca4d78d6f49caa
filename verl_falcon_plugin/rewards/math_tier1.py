"""Tier 1 of the math reward: LaTeX normalisation, string match, and a cheap exact symbolic check.

Tier 1 is pure Python (microseconds, no sympy) and only *decides* when it can prove its verdict:

* ``EQUAL``: the normalised strings are identical, or both sides evaluate to the same value
  (element-wise for tuples / intervals with identical brackets, as sets for ``\\{...\\}`` and
  for the pieces of a ``\\cup``), or they name the same choice letter (``\\text{(C)}`` / ``C``).
* ``DIFFERENT``: both sides evaluate *exactly* to different values, name different choice
  letters, or are tuples / intervals that differ in a bracket or in a proven-different
  element at the same position. Exact means no decimal
  point (``0.333`` may be meant as 1/3, so math-verify's tolerance judges it) and no ``e``,
  ``i`` or function names (``e^{i\\pi}`` is -1). math-verify compares numbers with a float
  tolerance and accepts ``1/2004!`` for ``1/2006!``; exact arithmetic disproves it.
* ``UNDECIDED`` for everything else: math-verify (tier 2) decides.

Values live in Q(sqrt 2, sqrt 3, ...): a rational coefficient per square-free radicand, a
canonical form, so equal numbers have equal representations (square roots of distinct
square-free integers are linearly independent over Q). Variables (single letters) and
``\\pi`` are replaced by fixed pseudo-random rationals: two expressions that agree at two
such points are the same rational function (Schwartz-Zippel; a false EQUAL needs both
random points on the difference's zero set, probability below 1e-15 for the degrees
allowed), and a point where they disagree proves they differ (``\\pi`` is transcendental,
so a polynomial identity in it is the only way two such expressions can be equal).
"""

from __future__ import annotations

import enum
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

# Guards that keep tier 1 cheap on adversarial input such as 9^{9^{9^9}}.
MAX_EXPONENT = 256
MAX_RESULT_BITS = 1 << 15
MAX_FACTORIAL = 5000
MAX_TOKENS = 256
MAX_RADICAND = 10**12
MAX_TERMS = 64


class Tier1Verdict(enum.Enum):
    EQUAL = "equal"
    DIFFERENT = "different"
    UNDECIDED = "undecided"


_DROP = (
    "\\left",
    "\\right",
    "\\displaystyle",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "~",
    "\\big",
    "\\Big",
    "\\mathbf",
    "\\textbf",
    "\\boldsymbol",
)
_FRAC_ALIASES = re.compile(r"\\[dt]frac")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d)\s*(\d)")
_TRAILING_PUNCT = re.compile(r"[.\s]+$")
_DEGREES = re.compile(r"\^\{?\\circ\}?$")
_UNIT_SUFFIX = re.compile(r"^(?P<num>[-+]?[\d.]+(?:/\d+)?)\\(?:text|mbox|mathrm)\{[A-Za-z ]+\}$")
_VAR_PREFIX = re.compile(r"^[A-Za-z]=(?P<rest>[^=]+)$")


def normalise(answer: str) -> str:
    """A canonical spelling: no delimiters, no spacing commands, one \\frac, no whitespace."""
    s = _TRAILING_PUNCT.sub("", answer.strip())
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$")
    for token in _DROP:
        s = s.replace(token, "")
    s = _FRAC_ALIASES.sub(r"\\frac", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = re.sub(r"(?<=[\d}])\s+(?=\\text)", "", s)
    s = re.sub(r"\s+(?![^{]*\})", "", s)  # whitespace outside braces: \text{ cm} keeps its space
    return _TRAILING_PUNCT.sub("", s)


def strip_decorations(s: str) -> str:
    """Drop what graders ignore around a number: a degree sign or a unit word (``5\\text{ cm}``)."""
    s = _DEGREES.sub("", s)
    unit = _UNIT_SUFFIX.match(s)
    return unit.group("num") if unit else s


class _GiveUp(Exception):
    """Not something tier 1 evaluates: the caller leaves it to tier 2."""


# --------------------------------------------------------------------------- numbers in Q(sqrt)
def _squarefree_split(n: int) -> tuple[int, int]:
    """(s, r) with n = s^2 * r and r square-free, by trial division (n <= MAX_RADICAND)."""
    if n > MAX_RADICAND:
        raise _GiveUp("radicand too large")
    s, r, p = 1, 1, 2
    while p * p <= n:
        while n % (p * p) == 0:
            n //= p * p
            s *= p
        if n % p == 0:
            n //= p
            r *= p
        p += 1 if p == 2 else 2
    return s, r * n


@dataclass(frozen=True)
class Surd:
    """sum of coeff * sqrt(radicand) over square-free radicands; radicand 1 is the rational part."""

    terms: tuple[tuple[int, Fraction], ...]

    @staticmethod
    def make(terms: dict[int, Fraction]) -> "Surd":
        kept = tuple(sorted((r, c) for r, c in terms.items() if c != 0))
        if len(kept) > MAX_TERMS:
            raise _GiveUp("too many surd terms")
        return Surd(kept)

    @staticmethod
    def rational(q: Fraction) -> "Surd":
        return Surd.make({1: Fraction(q)})

    def as_rational(self) -> Fraction | None:
        if not self.terms:
            return Fraction(0)
        if len(self.terms) == 1 and self.terms[0][0] == 1:
            return self.terms[0][1]
        return None

    def __add__(self, other: "Surd") -> "Surd":
        out = dict(self.terms)
        for r, c in other.terms:
            out[r] = out.get(r, Fraction(0)) + c
        return Surd.make(out)

    def __neg__(self) -> "Surd":
        return Surd(tuple((r, -c) for r, c in self.terms))

    def __sub__(self, other: "Surd") -> "Surd":
        return self + (-other)

    def __mul__(self, other: "Surd") -> "Surd":
        out: dict[int, Fraction] = {}
        for r1, c1 in self.terms:
            for r2, c2 in other.terms:
                g = math.gcd(r1, r2)  # sqrt(r1 r2) = g sqrt(r1 r2 / g^2), both square-free
                r = (r1 // g) * (r2 // g)
                out[r] = out.get(r, Fraction(0)) + c1 * c2 * g
                _check_size(out[r])
        return Surd.make(out)

    def inverse(self) -> "Surd":
        if not self.terms:
            raise _GiveUp("division by zero")
        if len(self.terms) == 1:  # 1 / (c sqrt r) = sqrt r / (c r)
            r, c = self.terms[0]
            return Surd.make({r: 1 / (c * r)})
        raise _GiveUp("division by a sum of surds")


def _check_size(q: Fraction) -> None:
    if max(abs(q.numerator), q.denominator).bit_length() > MAX_RESULT_BITS:
        raise _GiveUp("number too large to evaluate cheaply")


def _sqrt(value: Surd) -> Surd:
    q = value.as_rational()
    if q is None or q < 0:
        raise _GiveUp("square root of a non-rational or negative value")
    s_num, r_num = _squarefree_split(q.numerator * q.denominator)  # sqrt(p/q) = sqrt(pq)/q
    return Surd.make({r_num: Fraction(s_num, q.denominator)})


def _power(base: Surd, exponent: Surd) -> Surd:
    e = exponent.as_rational()
    if e is None:
        raise _GiveUp("irrational exponent")
    if e.denominator == 2:  # x^{k/2} = sqrt(x)^k
        base, e = _sqrt(base), e * 2
    if e.denominator != 1 or abs(e) > MAX_EXPONENT:
        raise _GiveUp("exponent not a small integer")
    q = base.as_rational()
    if q is not None:
        bits = max(abs(q.numerator), q.denominator).bit_length()
        if bits * abs(int(e)) > MAX_RESULT_BITS:
            raise _GiveUp("power too large to evaluate cheaply")
        if q == 0 and e < 0:
            raise _GiveUp("zero to a negative power")
        return Surd.rational(q ** int(e))
    result = Surd.rational(Fraction(1))
    factor = base if e > 0 else base.inverse()
    for _ in range(abs(int(e))):
        result = result * factor
    return result


# --------------------------------------------------------------------------- parser
_TOKEN = re.compile(r"\d+\.\d*|\.\d+|\d+|\\frac|\\sqrt|\\pi|\\cdot|\\times|\\div|\\?%|[A-Za-z]|[-+*/^()!{}\[\]]")
_ATOM_START = re.compile(r"[\d.A-Za-z({]|\\frac|\\sqrt|\\pi")
_INEXACT_LETTERS = {"e", "i"}  # Euler's number and the imaginary unit are not free variables


def _tokenise(s: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(s):
        match = _TOKEN.match(s, pos)
        if match is None:
            raise _GiveUp(s[pos:])
        tokens.append(match.group())
        pos = match.end()
    if not tokens or len(tokens) > MAX_TOKENS:
        raise _GiveUp(s)
    for a, b in zip(tokens, tokens[1:]):
        if a.isalpha() and b.isalpha() and len(a) == len(b) == 1:
            raise _GiveUp("a word, not a product of variables")  # "ab" may be text ("Monday")
    return tokens


def _point_value(name: str, point: int) -> Fraction:
    rng = random.Random(f"falcon-h1r-tier1:{name}:{point}")
    return Fraction(rng.randint(10**6, 10**9), rng.randint(10**6, 10**9))


class _Evaluator:
    """Recursive descent over + - * / ^ ! % \\frac \\sqrt, implicit products and variables."""

    def __init__(self, tokens: list[str], point: int):
        self.tokens = tokens
        self.pos = 0
        self.point = point
        self.saw_decimal = False
        self.symbols: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _GiveUp(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Surd:
        value = self.expr()
        if self.peek() is not None:
            raise _GiveUp(f"trailing {self.peek()!r}")
        return value

    def expr(self) -> Surd:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> Surd:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "/", "\\cdot", "\\times", "\\div"):
                self.take()
                rhs = self.unary()
                value = value * (rhs.inverse() if token in ("/", "\\div") else rhs)
            elif token is not None and _ATOM_START.match(token):
                value = value * self.power()  # implicit product: 2x, 2\sqrt{3}, (x+1)(x-1)
            else:
                return value

    def unary(self) -> Surd:
        if self.peek() in ("-", "+"):
            negative = self.take() == "-"
            value = self.unary()
            return -value if negative else value
        return self.power()

    def power(self) -> Surd:
        base = self.postfix()
        if self.peek() != "^":
            return base
        self.take("^")
        exponent = self.group() if self.peek() == "{" else self.postfix()
        return _power(base, exponent)

    def postfix(self) -> Surd:
        value = self.atom()
        while self.peek() in ("!", "%", "\\%"):
            if self.take() != "!":
                value = value * Surd.rational(Fraction(1, 100))
                continue
            q = value.as_rational()
            if q is None or q.denominator != 1 or not 0 <= q <= MAX_FACTORIAL:
                raise _GiveUp("factorial out of range")
            value = Surd.rational(Fraction(math.factorial(int(q))))
        return value

    def group(self) -> Surd:
        self.take("{")
        value = self.expr()
        self.take("}")
        return value

    def atom(self) -> Surd:
        token = self.peek()
        if token == "(":
            self.take("(")
            value = self.expr()
            self.take(")")
            return value
        if token == "{":
            return self.group()
        if token == "\\frac":
            self.take()
            numerator, denominator = self.group(), self.group()
            return numerator * denominator.inverse()
        if token == "\\sqrt":
            self.take()
            if self.peek() == "[":
                raise _GiveUp("n-th root")
            return _sqrt(self.group() if self.peek() == "{" else self.atom())
        if token == "\\pi" or (token is not None and token.isalpha() and len(token) == 1):
            self.take()
            if token in _INEXACT_LETTERS:
                raise _GiveUp(f"{token} is a constant, not a variable")
            self.symbols.add(token)
            return Surd.rational(_point_value(token, self.point))
        if token is not None and (token[0].isdigit() or token[0] == "."):
            self.take()
            if "." in token:
                self.saw_decimal = True
            return Surd.rational(Fraction(token))
        raise _GiveUp(f"unexpected {token!r}")


@dataclass(frozen=True)
class Evaluated:
    values: tuple[Surd, ...]  # one per random point
    exact: bool  # no decimal point
    symbols: frozenset[str]


POINTS = 2


def evaluate(answer: str) -> Evaluated | None:
    """The answer's value at each random point, or None when tier 1 does not evaluate it."""
    try:
        tokens = _tokenise(strip_decorations(answer))
        values, exact, symbols = [], True, set()
        for point in range(POINTS):
            evaluator = _Evaluator(tokens, point)
            values.append(evaluator.parse())
            exact, symbols = not evaluator.saw_decimal, evaluator.symbols
            if not symbols:
                break  # a constant: one evaluation is the value
    except (_GiveUp, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None
    return Evaluated(tuple(values), exact, frozenset(symbols))


def exact_value(answer: str) -> tuple[Fraction, bool] | None:
    """(value, is_exact) of an answer that is a rational constant, None otherwise.

    ``is_exact`` is False when a decimal point appears: ``0.333`` may be meant as 1/3.
    """
    result = evaluate(answer)
    if result is None or result.symbols:
        return None
    q = result.values[0].as_rational()
    return None if q is None else (q, result.exact)


def _same(a: Evaluated, b: Evaluated) -> bool:
    if a.symbols != b.symbols:
        return False
    n = min(len(a.values), len(b.values))
    return all(x == y for x, y in zip(a.values[:n], b.values[:n]))


def _verdict(g: str, p: str) -> Tier1Verdict:
    if g == p:
        return Tier1Verdict.EQUAL
    gv, pv = evaluate(g), evaluate(p)
    if gv is None or pv is None:
        return Tier1Verdict.UNDECIDED
    if _same(gv, pv):
        return Tier1Verdict.EQUAL
    bare_letter = any(len(x) == 1 and x.isalpha() for x in (g, p))  # "A" vs "a" is a grader's call
    if gv.exact and pv.exact and not bare_letter and gv.values[0] != pv.values[0]:
        return Tier1Verdict.DIFFERENT
    return Tier1Verdict.UNDECIDED


def _split_top_level(inner: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return parts


def _sequence(s: str) -> tuple[str, str, list[str]] | None:
    """(open, close, elements) for ``(a,b)``, ``[a,b)``, ``\\{a,b\\}``... with 2+ elements."""
    for opener in ("\\{", "(", "["):
        if s.startswith(opener):
            body = s[len(opener) :]
            for closer in ("\\}", ")", "]"):
                if body.endswith(closer):
                    parts = _split_top_level(body[: -len(closer)])
                    if len(parts) >= 2:
                        return opener, closer, parts
    return None


def _same_sets(xs: list[str], ys: list[str], verdict=None) -> bool:
    """Every element has an EQUAL partner on the other side, both ways."""
    verdict = verdict or _verdict
    return all(any(verdict(x, y) is Tier1Verdict.EQUAL for y in ys) for x in xs) and all(
        any(verdict(x, y) is Tier1Verdict.EQUAL for x in xs) for y in ys
    )


def _compare_sequences(g: tuple[str, str, list[str]], p: tuple[str, str, list[str]]) -> Tier1Verdict:
    if len(g[2]) != len(p[2]) or "\\{" in (g[0], p[0]):
        if g[:2] == p[:2] == ("\\{", "\\}") and _same_sets(g[2], p[2]):
            return Tier1Verdict.EQUAL
        return Tier1Verdict.UNDECIDED
    verdicts = [_verdict(x, y) for x, y in zip(g[2], p[2])]
    if g[:2] == p[:2] and all(v is Tier1Verdict.EQUAL for v in verdicts):
        return Tier1Verdict.EQUAL
    # tuples and intervals with the same elements but other brackets, or an element proven
    # different at the same position, denote different objects under any reading
    if all(v is Tier1Verdict.EQUAL for v in verdicts) or (g[:2] == p[:2] and Tier1Verdict.DIFFERENT in verdicts):
        return Tier1Verdict.DIFFERENT
    return Tier1Verdict.UNDECIDED


_CHOICE = re.compile(r"^(?:\\text\{)?\(?([A-Z])\)?\}?$")


def _choice_letter(s: str) -> str | None:
    """``A``, ``(A)``, ``\\text{(A)}``, ``\\text{A}`` -> ``A`` (multiple-choice answers)."""
    match = _CHOICE.match(s)
    return match.group(1) if match else None


def compare(gold: str, predicted: str) -> Tier1Verdict:
    """Tier-1 verdict on ``predicted`` against ``gold`` (both already extracted answers)."""
    g, p = normalise(gold), normalise(predicted)
    if not g or not p:
        return Tier1Verdict.UNDECIDED
    if "=" not in g:  # "x=5" answering "5": graders (and math-verify) take the right-hand side
        prefixed = _VAR_PREFIX.match(p)
        p = prefixed.group("rest") if prefixed else p
    if ("\\circ" in g) != ("\\circ" in p) and "\\pi" in g + p:
        return Tier1Verdict.UNDECIDED  # 90^\circ may answer \frac{\pi}{2}: a unit conversion
    gc, pc = _choice_letter(g), _choice_letter(p)
    if gc and pc:
        return Tier1Verdict.EQUAL if gc == pc else Tier1Verdict.DIFFERENT
    if "\\cup" in g and "\\cup" in p:  # unions of intervals: the same pieces in any order
        gu, pu = g.split("\\cup"), p.split("\\cup")
        same = _same_sets(gu, pu, lambda x, y: compare(x, y))
        return Tier1Verdict.EQUAL if same else Tier1Verdict.UNDECIDED
    gs, ps = _sequence(g), _sequence(p)
    if gs and ps:
        return _compare_sequences(gs, ps)
    if gs or ps:
        return Tier1Verdict.UNDECIDED  # a tuple vs a scalar: left to math-verify's conventions
    return _verdict(g, p)
