"""Answer extraction and tier-1 unit tests (no math-verify)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from verl_falcon_plugin.rewards.extract import answer_part, extract_answer, last_boxed
from verl_falcon_plugin.rewards.math_tier1 import Tier1Verdict, compare, exact_value, normalise


@pytest.mark.parametrize(
    "text,expected",
    [
        ("\\boxed{5}", "5"),
        ("a \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{\\frac{a}{\\sqrt{b}}}", "\\frac{a}{\\sqrt{b}}"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),  # escaped braces do not close the box
        ("\\fbox{7}", "7"),
        ("\\boxed 7.", "7."),
        ("\\boxed{3} and \\boxed{4", "3"),  # a truncated last box is skipped
        ("no box here", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_only_the_answer_part_is_graded():
    response = "<think>maybe \\boxed{3}</think>So \\boxed{4}"
    assert answer_part(response) == "So \\boxed{4}"
    assert extract_answer(response) == "4"
    assert extract_answer("<think>\\boxed{3}</think>I give up.") is None


def test_answer_is_fallback():
    assert extract_answer("<think>x</think>The final answer is $\\frac{1}{2}$.") == "\\frac{1}{2}"
    assert extract_answer("<think>x</think>Answer: 12") == "12"


def test_normalise():
    assert normalise("\\left( \\dfrac{1}{2} \\right)") == "(\\frac{1}{2})"
    assert normalise("$\\frac12$.") == "\\frac{1}{2}"


@pytest.mark.parametrize(
    "text,value,exact",
    [
        ("\\frac{1}{2}", Fraction(1, 2), True),
        ("2^{10}", Fraction(1024), True),
        ("-3!", Fraction(-6), True),
        ("0.25", Fraction(1, 4), False),
        ("50\\%", Fraction(1, 2), True),
        ("2\\cdot3+1", Fraction(7), True),
        ("\\frac{1}{2004!}", Fraction(1, __import__("math").factorial(2004)), True),
    ],
)
def test_exact_value(text, value, exact):
    assert exact_value(text) == (value, exact)


@pytest.mark.parametrize("text", ["9^{9^{9^9}}", "2^{100000}", "10000!", "x+1", "\\sqrt{2}", "1/0", "1,000"])
def test_exact_value_gives_up_cheaply(text):
    assert exact_value(text) is None


def test_decimals_are_never_proven_different():
    # 0.333 may be meant as 1/3: only math-verify's tolerance may judge it
    assert compare("\\frac{1}{3}", "0.333333") is Tier1Verdict.UNDECIDED
    assert compare("\\frac{1}{2004!}", "\\frac{1}{2006!}") is Tier1Verdict.DIFFERENT
    assert compare("(1,2]", "(1,2)") is Tier1Verdict.DIFFERENT  # same endpoints, other brackets
    assert compare("(-\\infty,-1)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,-1)") is Tier1Verdict.EQUAL
    assert compare("\\text{(C)}", "C") is Tier1Verdict.EQUAL
    assert compare("\\text{(C)}", "(D)") is Tier1Verdict.DIFFERENT
    assert compare("(3,-4)", "(-4,3)") is Tier1Verdict.DIFFERENT
    assert compare("(\\frac{1}{2},3]", "(0.5,3]") is Tier1Verdict.EQUAL


@pytest.mark.parametrize(
    "gold,predicted,verdict",
    [
        ("2\\sqrt{2}", "\\sqrt{8}", Tier1Verdict.EQUAL),
        ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", Tier1Verdict.EQUAL),
        ("3\\sqrt{3}", "\\sqrt{27}", Tier1Verdict.EQUAL),
        ("\\sqrt{12}+\\sqrt{3}", "3\\sqrt{3}", Tier1Verdict.EQUAL),
        ("4\\sqrt{2}", "4\\sqrt{3}", Tier1Verdict.DIFFERENT),
        ("x^2+2x+1", "(x+1)^2", Tier1Verdict.EQUAL),
        ("x^2+8x+16", "(x+5)^2", Tier1Verdict.DIFFERENT),
        ("\\frac{\\pi}{3}", "\\frac{1}{3}\\pi", Tier1Verdict.EQUAL),
        ("\\frac{22}{7}", "\\pi", Tier1Verdict.DIFFERENT),
        ("\\{1,4\\}", "\\{4,1\\}", Tier1Verdict.EQUAL),
        ("42", "n=42", Tier1Verdict.EQUAL),
        ("42", "42\\text{ ways}", Tier1Verdict.EQUAL),
        ("42", "43^\\circ", Tier1Verdict.DIFFERENT),
        ("\\frac{\\pi}{2}", "90^\\circ", Tier1Verdict.UNDECIDED),  # a unit conversion: math-verify's call
        ("-1", "e^{i\\pi}", Tier1Verdict.UNDECIDED),  # e and i are constants, never variables
        ("A", "a", Tier1Verdict.UNDECIDED),  # case of a choice letter: a grader's convention
        ("\\text{Monday}", "Monday", Tier1Verdict.UNDECIDED),
        ("1/3", "0.333333", Tier1Verdict.UNDECIDED),
        ("\\sqrt[3]{2}", "2^{1/3}", Tier1Verdict.UNDECIDED),
    ],
)
def test_cheap_symbolic_check(gold, predicted, verdict):
    assert compare(gold, predicted) is verdict


def test_implicit_products_and_surd_arithmetic():
    assert exact_value("2\\sqrt{3}\\cdot\\sqrt{3}") == (Fraction(6), True)
    assert exact_value("(1+\\sqrt{2})(1-\\sqrt{2})") == (Fraction(-1), True)
    assert exact_value("\\sqrt{2}") is None  # irrational: not a rational value
    assert exact_value("\\frac{1}{1+\\sqrt{2}}") is None  # rationalising sums is out of scope


def test_gold_answers_forms():
    import numpy as np

    from verl_falcon_plugin.rewards.math import gold_answers, math_reward

    assert gold_answers(" 5 ") == ["5"]
    assert gold_answers(7) == ["7"]
    assert gold_answers(np.array(["1/2", "0.5"])) == ["1/2", "0.5"]
    assert math_reward("<think>x</think>\\boxed{6}", ["5", "6"]).score == 1.0
    for bad in ("", None, [], ["1", ""], True):
        with pytest.raises(ValueError, match="ground_truth"):
            gold_answers(bad)
