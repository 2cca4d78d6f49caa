"""Tier 1 of the math reward: LaTeX normalisation, string match and a cheap exact check.

Pure Python (microseconds, no sympy). Tier 1 *decides* only what it can prove; everything
else is math-verify's (tier 2) call:

* ``EQUAL`` (the answer is accepted): identical normalised strings; the same value (surds,
  polynomials at random points, :mod:`.math_expr`); the same elements for tuples / intervals
  with identical brackets, or as sets for ``\\{...\\}`` and the pieces of a ``\\cup``; the
  same choice letter (``\\text{(C)}`` / ``C``); the same number up to a unit word, a degree
  sign, a currency sign, an ``x =`` prefix or a percent sign (``28\\%`` answers ``28`` and
  ``0.28``).
* ``DIFFERENT`` (the answer is rejected without math-verify) only when *both* sides are
  unambiguous exact values with nothing else in the string, and they differ: plain integers
  or decimals (``42``, ``-0.25``); constant expressions with no decimal point, no unit or
  sign around them, and no reading textbooks disagree on (``\\frac{1}{2006!}``, ``2^{-99}``,
  ``3\\sqrt{2}``); polynomials in the same variables among x, y, z, t, n, k (a point where
  they differ is a proof); tuples and intervals of such values that differ at a position, or
  intervals with the same endpoints and another bracket. Exact arithmetic is a proof there,
  and math-verify's float tolerance would accept near misses such as ``1/2004!`` for
  ``1/2006!``.
* ``UNDECIDED`` for everything else, including every set, choice letter, equation, unit,
  percent or decimal-versus-fraction answer that is not proven equal: math-verify decides.
"""

from __future__ import annotations

import enum
import functools
import re
from fractions import Fraction

from verl_falcon_plugin.rewards.math_expr import Evaluated, evaluate


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
_DIGIT_SPACE_DIGIT = re.compile(r"(?<=\d)\s+(?=\d)")  # "2 1/2" is not 21/2, "1 000" not read at all
_UNREADABLE = "\u2423"  # the tokenizer rejects it: tier 1 abstains
_DEGREES = re.compile(r"\^\{?\\circ\}?$")
_UNIT_SUFFIX = re.compile(r"^(?P<num>[-+]?[\d.]+(?:/\d+)?)\\(?:text|mbox|mathrm)\{[A-Za-z ]+\}$")
_CURRENCY = re.compile(r"^(?P<sign>-?)\\\$(?P<num>.+)$|^(?P<num2>.+)\\\$$")
_VAR_PREFIX = re.compile(r"^[A-Za-z]=(?P<rest>[^=]+)$")
_PERCENT = re.compile(r"\\?%$")
_PLAIN_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)$")
_EXACT_CHARS = re.compile(r"^(?:[\d+\-*/^()!{}]|\\frac|\\sqrt|\\cdot|\\times|\\div)+$")
_POLYNOMIAL_CHARS = re.compile(r"^(?:[\d+\-*^(){}xyztnk]|\\cdot|\\times)+$")
_VARIABLES = frozenset("xyztnk")
_CHOICE = re.compile(r"^(?:\\text\{)?\(?([A-Z])\)?\}?$")


@functools.lru_cache(maxsize=1 << 16)
def normalise(answer: str) -> str:
    """A canonical spelling: no delimiters, no spacing commands, one \\frac, no whitespace."""
    s = _TRAILING_PUNCT.sub("", answer.strip())
    if len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s.strip("$")
    for token in _DROP:
        s = s.replace(token, "")
    s = _FRAC_ALIASES.sub(r"\\frac", s)
    s = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", s)
    s = _DIGIT_SPACE_DIGIT.sub(_UNREADABLE, s)
    s = re.sub(r"(?<=[\d}])\s+(?=\\text)", "", s)
    s = re.sub(r"\s+(?![^{]*\})", "", s)  # whitespace outside braces: \text{ cm} keeps its space
    return _TRAILING_PUNCT.sub("", s)


def strip_decorations(s: str) -> str:
    """Drop what graders ignore around a number: a degree sign, a unit word, a currency sign."""
    s = _DEGREES.sub("", s)
    unit = _UNIT_SUFFIX.match(s)
    if unit:
        return unit.group("num")
    currency = _CURRENCY.match(s)
    if currency:
        return (currency.group("sign") or "") + (currency.group("num") or currency.group("num2"))
    return s


def _same(a: Evaluated, b: Evaluated) -> bool:
    if a.symbols != b.symbols:
        return False
    n = min(len(a.values), len(b.values))
    return all(x == y for x, y in zip(a.values[:n], b.values[:n]))


def _provably_exact(s: str, value: Evaluated) -> bool:
    """A number (or a polynomial in single-letter variables) with nothing else in the string, read the
    same way by every textbook: its value at a point is then exact, and a difference a proof."""
    if value.ambiguous:
        return False
    if value.constant and _PLAIN_NUMBER.match(s):
        return True
    return value.exact and bool(_EXACT_CHARS.match(s) or (_POLYNOMIAL_CHARS.match(s) and value.symbols <= _VARIABLES))


def _scalar_verdict(g: str, p: str) -> Tier1Verdict:
    if g == p:
        return Tier1Verdict.EQUAL
    gs, ps = strip_decorations(g), strip_decorations(p)
    gv, pv = evaluate(gs), evaluate(ps)
    if gv is None or pv is None or gv.ambiguous or pv.ambiguous:
        return Tier1Verdict.UNDECIDED
    if _same(gv, pv):
        return Tier1Verdict.EQUAL
    both_exact = _provably_exact(g, gv) and _provably_exact(p, pv) and gv.symbols == pv.symbols
    one_plain_decimal = bool(_PLAIN_NUMBER.match(g)) != bool(_PLAIN_NUMBER.match(p)) and not (gv.exact and pv.exact)
    if both_exact and not one_plain_decimal and gv.values[0] != pv.values[0]:
        return Tier1Verdict.DIFFERENT
    return Tier1Verdict.UNDECIDED


def _only_equal(verdict: Tier1Verdict) -> Tier1Verdict:
    """A rewriting that may change the meaning (a prefix, a percent) may prove EQUAL, never DIFFERENT."""
    return Tier1Verdict.EQUAL if verdict is Tier1Verdict.EQUAL else Tier1Verdict.UNDECIDED


def _percent_verdict(g: str, p: str) -> Tier1Verdict | None:
    """``28\\%`` answers ``28``, ``28\\%`` and ``0.28`` (either side may carry the sign); None: no percent."""
    g_pct, p_pct = bool(_PERCENT.search(g)), bool(_PERCENT.search(p))
    if not (g_pct or p_pct):
        return None
    g_bare, p_bare = _PERCENT.sub("", g), _PERCENT.sub("", p)
    if _scalar_verdict(g_bare, p_bare) is Tier1Verdict.EQUAL:
        return Tier1Verdict.EQUAL
    if g_pct != p_pct:
        pct, other = (g_bare, p_bare) if g_pct else (p_bare, g_bare)
        if _scalar_verdict(f"\\frac{{{pct}}}{{100}}", other) is Tier1Verdict.EQUAL:
            return Tier1Verdict.EQUAL
    return Tier1Verdict.UNDECIDED


def _balanced(body: str) -> bool:
    depth = 0
    for ch in body:
        depth += ch in "({["
        depth -= ch in ")}]"
        if depth < 0:
            return False
    return depth == 0


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
    """(open, close, elements) for ``(a,b)``, ``[a,b)``, ``\\{a,b\\}``... with 2+ elements, one bracket pair."""
    for opener in ("\\{", "(", "["):
        if s.startswith(opener):
            body = s[len(opener) :]
            for closer in ("\\}", ")", "]"):
                if body.endswith(closer):
                    inner = body[: -len(closer)]
                    parts = _split_top_level(inner) if _balanced(inner.replace("\\{", "{").replace("\\}", "}")) else []
                    if len(parts) >= 2:
                        return opener, closer, parts
    return None


def _same_sets(xs: list[str], ys: list[str], verdict=None) -> bool:
    """Every element has an EQUAL partner on the other side, both ways."""
    verdict = verdict or _scalar_verdict
    return all(any(verdict(x, y) is Tier1Verdict.EQUAL for y in ys) for x in xs) and all(
        any(verdict(x, y) is Tier1Verdict.EQUAL for x in xs) for y in ys
    )


def _sequence_verdict(g: tuple[str, str, list[str]], p: tuple[str, str, list[str]]) -> Tier1Verdict:
    """Sets: EQUAL or nothing. Tuples and intervals (no set brackets): element by element, and
    DIFFERENT when an element is proven different at the same position, or when two intervals
    have the same endpoints and another bracket (``(1,2]`` is not ``[1,2]`` under any reading)."""
    if "\\{" in (g[0], p[0]):
        same = g[:2] == p[:2] and _same_sets(g[2], p[2])
        return Tier1Verdict.EQUAL if same else Tier1Verdict.UNDECIDED
    if len(g[2]) != len(p[2]):
        return Tier1Verdict.UNDECIDED
    verdicts = [_scalar_verdict(x, y) for x, y in zip(g[2], p[2])]
    if Tier1Verdict.UNDECIDED in verdicts:
        return Tier1Verdict.UNDECIDED
    if g[:2] == p[:2]:
        return Tier1Verdict.DIFFERENT if Tier1Verdict.DIFFERENT in verdicts else Tier1Verdict.EQUAL
    return Tier1Verdict.DIFFERENT if len(g[2]) == 2 else Tier1Verdict.UNDECIDED  # [1,2,3] may be (1,2,3)


def _choice_letter(s: str) -> str | None:
    """``A``, ``(A)``, ``\\text{(A)}``, ``\\text{A}`` -> ``A`` (multiple-choice answers)."""
    match = _CHOICE.match(s)
    return match.group(1) if match else None


def _strip_variable(g: str, p: str) -> tuple[str, str, bool]:
    """``x=5`` against ``5``: graders (and math-verify) take the right-hand side."""
    gm, pm = _VAR_PREFIX.match(g), _VAR_PREFIX.match(p)
    if pm and "=" not in g:
        return g, pm.group("rest"), True
    if gm and "=" not in p:
        return gm.group("rest"), p, True
    return g, p, False


@functools.lru_cache(maxsize=1 << 16)
def compare(gold: str, predicted: str) -> Tier1Verdict:
    """Tier-1 verdict on ``predicted`` against ``gold`` (both already extracted answers)."""
    g, p = normalise(gold), normalise(predicted)
    if not g or not p:
        return Tier1Verdict.UNDECIDED
    g, p, stripped = _strip_variable(g, p)
    if stripped:
        return _only_equal(compare(g, p))
    if ("\\circ" in g) != ("\\circ" in p) and "\\pi" in g + p:
        return Tier1Verdict.UNDECIDED  # 90^\circ may answer \frac{\pi}{2}: a unit conversion
    gc, pc = _choice_letter(g), _choice_letter(p)
    if gc and pc:
        return Tier1Verdict.EQUAL if gc == pc else Tier1Verdict.UNDECIDED
    if "\\cup" in g and "\\cup" in p:  # unions of intervals: the same pieces in any order
        same = _same_sets(g.split("\\cup"), p.split("\\cup"), compare)
        return Tier1Verdict.EQUAL if same else Tier1Verdict.UNDECIDED
    gs, ps = _sequence(g), _sequence(p)
    if gs and ps:
        return _sequence_verdict(gs, ps)
    if gs or ps:
        return Tier1Verdict.UNDECIDED  # a tuple vs a scalar: left to math-verify's conventions
    percent = _percent_verdict(g, p)
    if percent is not None:
        return percent
    return _scalar_verdict(g, p)


def exact_value(answer: str) -> tuple[Fraction, bool] | None:
    """(value, is_exact) of an answer that is a rational constant, None otherwise.

    ``is_exact`` is False when a decimal point appears: ``0.333`` may be meant as 1/3.
    """
    result = evaluate(strip_decorations(normalise(answer)))
    if result is None or result.symbols:
        return None
    q = result.values[0].as_rational()
    return None if q is None else (q, result.exact)
