"""Tier 1's evaluator: a recursive-descent reading of a LaTeX answer as an exact value.

Covers + - * / ^ ! % \\frac \\sqrt, implicit products and single-letter variables. Variables
and ``\\pi`` are replaced by fixed pseudo-random rationals: two expressions that agree at two
such points are the same rational function (Schwartz-Zippel; a false EQUAL needs both random
points on the difference's zero set, probability below 1e-15 for the degrees allowed), and a
point where they disagree proves they differ (``\\pi`` is transcendental).

A reading is flagged *ambiguous* where textbooks and parsers differ, and tier 1 then decides
nothing: an implicit product right after a division (``1/2x``, ``1/2\\sqrt{3}``) and a chain of
divisions (``1/2/3``). A mixed number (``3\\frac{1}{2}``) is read as every textbook reads it,
3 + 1/2, never as the product 3 * 1/2.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass
from fractions import Fraction

from verl_falcon_plugin.rewards.math_surd import (
    MAX_FACTORIAL,
    GiveUp,
    Surd,
    surd_power,
    surd_sqrt,
)

MAX_TOKENS = 256
_MIXED_NUMBER = re.compile(r"(?<![\w.}^)!_])(\d+)\\frac\{(\d+)\}\{(\d+)\}")


_TOKEN = re.compile(r"\d+\.\d*|\.\d+|\d+|\\frac|\\sqrt|\\pi|\\cdot|\\times|\\div|\\?%|[A-Za-z]|[-+*/^()!{}\[\]]")
_ATOM_START = re.compile(r"[\d.A-Za-z({]|\\frac|\\sqrt|\\pi")
_INEXACT_LETTERS = {"e", "i"}  # Euler's number and the imaginary unit are not free variables


def _tokenise(s: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(s):
        match = _TOKEN.match(s, pos)
        if match is None:
            raise GiveUp(s[pos:])
        tokens.append(match.group())
        pos = match.end()
    if not tokens or len(tokens) > MAX_TOKENS:
        raise GiveUp(s)
    for a, b in zip(tokens, tokens[1:]):
        if a.isalpha() and b.isalpha() and len(a) == len(b) == 1:
            raise GiveUp("a word, not a product of variables")  # "ab" may be text ("Monday")
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
        self.ambiguous = False  # a reading textbooks and parsers disagree on (see the module docstring)
        self.symbols: set[str] = set()

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise GiveUp(f"expected {expected!r}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> Surd:
        value = self.expr()
        if self.peek() is not None:
            raise GiveUp(f"trailing {self.peek()!r}")
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
        divided = False
        while True:
            token = self.peek()
            if token in ("*", "/", "\\cdot", "\\times", "\\div"):
                self.take()
                rhs = self.unary()
                if token in ("/", "\\div"):
                    self.ambiguous |= divided  # 1/2/3
                    divided = True
                value = value * (rhs.inverse() if token in ("/", "\\div") else rhs)
            elif token is not None and _ATOM_START.match(token):
                self.ambiguous |= divided  # 1/2x: (1/2)x or 1/(2x)?
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
        return surd_power(base, exponent)

    def postfix(self) -> Surd:
        value = self.atom()
        while self.peek() in ("!", "%", "\\%"):
            if self.take() != "!":
                value = value * Surd.rational(Fraction(1, 100))
                continue
            q = value.as_rational()
            if q is None or q.denominator != 1 or not 0 <= q <= MAX_FACTORIAL:
                raise GiveUp("factorial out of range")
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
                raise GiveUp("n-th root")
            return surd_sqrt(self.group() if self.peek() == "{" else self.atom())
        if token == "\\pi" or (token is not None and token.isalpha() and len(token) == 1):
            self.take()
            if token in _INEXACT_LETTERS:
                raise GiveUp(f"{token} is a constant, not a variable")
            self.symbols.add(token)
            return Surd.rational(_point_value(token, self.point))
        if token is not None and (token[0].isdigit() or token[0] == "."):
            self.take()
            if "." in token:
                self.saw_decimal = True
            return Surd.rational(Fraction(token))
        raise GiveUp(f"unexpected {token!r}")


@dataclass(frozen=True)
class Evaluated:
    values: tuple[Surd, ...]  # one per random point
    exact: bool  # no decimal point
    symbols: frozenset[str]
    ambiguous: bool  # textbooks and parsers may read it otherwise: decide nothing from it

    @property
    def constant(self) -> bool:
        return not self.symbols


POINTS = 2


def read_mixed_numbers(s: str) -> str:
    """``3\\frac{1}{2}`` -> ``(3+\\frac{1}{2})``: a mixed number is a sum, not a product."""
    return _MIXED_NUMBER.sub(r"(\1+\\frac{\2}{\3})", s)


@functools.lru_cache(maxsize=1 << 16)
def evaluate(answer: str) -> Evaluated | None:
    """The value of an already normalised answer at each random point, or None when tier 1 cannot read it.

    Cached: in GRPO the 16 responses of a prompt share one gold and often one answer.
    """
    try:
        tokens = _tokenise(read_mixed_numbers(answer))
        values, exact, symbols, ambiguous = [], True, set(), False
        for point in range(POINTS):
            evaluator = _Evaluator(tokens, point)
            values.append(evaluator.parse())
            exact, symbols, ambiguous = not evaluator.saw_decimal, evaluator.symbols, evaluator.ambiguous
            if not symbols:
                break  # a constant: one evaluation is the value
    except (GiveUp, ZeroDivisionError, ValueError, OverflowError, RecursionError):
        return None
    return Evaluated(tuple(values), exact, frozenset(symbols), ambiguous)
