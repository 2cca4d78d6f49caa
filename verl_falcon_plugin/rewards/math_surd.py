"""Exact numbers for tier 1: rationals and sums of rational multiples of square roots.

Values live in Q(sqrt 2, sqrt 3, ...): a rational coefficient per square-free radicand, a
canonical form, so equal numbers have equal representations (square roots of distinct
square-free integers are linearly independent over Q). Pure Python, bounded: anything too
large to evaluate cheaply raises :class:`GiveUp` and tier 1 abstains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# Guards that keep tier 1 cheap on adversarial input such as 9^{9^{9^9}}.
MAX_EXPONENT = 256
MAX_RESULT_BITS = 1 << 15
MAX_FACTORIAL = 5000
MAX_RADICAND = 10**12
MAX_TERMS = 64


class GiveUp(Exception):
    """Not something tier 1 evaluates: the caller leaves it to tier 2."""


def _squarefree_split(n: int) -> tuple[int, int]:
    """(s, r) with n = s^2 * r and r square-free, by trial division (n <= MAX_RADICAND)."""
    if n > MAX_RADICAND:
        raise GiveUp("radicand too large")
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
            raise GiveUp("too many surd terms")
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
            raise GiveUp("division by zero")
        if len(self.terms) == 1:  # 1 / (c sqrt r) = sqrt r / (c r)
            r, c = self.terms[0]
            return Surd.make({r: 1 / (c * r)})
        raise GiveUp("division by a sum of surds")


def _check_size(q: Fraction) -> None:
    if max(abs(q.numerator), q.denominator).bit_length() > MAX_RESULT_BITS:
        raise GiveUp("number too large to evaluate cheaply")


def surd_sqrt(value: Surd) -> Surd:
    q = value.as_rational()
    if q is None or q < 0:
        raise GiveUp("square root of a non-rational or negative value")
    s_num, r_num = _squarefree_split(q.numerator * q.denominator)  # sqrt(p/q) = sqrt(pq)/q
    return Surd.make({r_num: Fraction(s_num, q.denominator)})


def surd_power(base: Surd, exponent: Surd) -> Surd:
    e = exponent.as_rational()
    if e is None:
        raise GiveUp("irrational exponent")
    if e.denominator == 2:  # x^{k/2} = sqrt(x)^k
        base, e = surd_sqrt(base), e * 2
    if e.denominator != 1 or abs(e) > MAX_EXPONENT:
        raise GiveUp("exponent not a small integer")
    q = base.as_rational()
    if q is not None:
        bits = max(abs(q.numerator), q.denominator).bit_length()
        if bits * abs(int(e)) > MAX_RESULT_BITS:
            raise GiveUp("power too large to evaluate cheaply")
        if q == 0 and e < 0:
            raise GiveUp("zero to a negative power")
        return Surd.rational(q ** int(e))
    result = Surd.rational(Fraction(1))
    factor = base if e > 0 else base.inverse()
    for _ in range(abs(int(e))):
        result = result * factor
    return result
