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


@pytest.mark.parametrize(
    "response,expected",
    [
        ("Final Answer: The final answer is 7.78. I hope it is correct.", "7.78"),  # not the rest of the line
        ("Final Answer: The final answer is $\\$1{,}000$. I hope it is correct.", "\\$1{,}000"),
        ("$\\boxed{3}$ and $\\boxed{7}$", "3, 7"),  # several boxes: one answer, as math-verify joins them
        ("\\boxed{3}, \\boxed{5} or \\boxed{7}", "3, 5, 7"),
        ("\\boxed{5}. So \\boxed{5}", "5"),
        ("First \\boxed{3}. Then we check: \\boxed{7}", "7"),  # not joined: the last box
        ("A guess: \\boxed{0}. Checking again, the final answer is $12$.", "12"),  # stated after the last box
        ("The final answer is 28\\%.", "28\\%"),
        ("I could not finish.", None),  # math-verify's own extraction decides
    ],
)
def test_extraction_follows_math_verify(response, expected):
    assert extract_answer("<think>\\boxed{99}</think>" + response) == expected


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


def test_decimals_are_never_proven_different_from_fractions():
    # 0.333 may be meant as 1/3: only math-verify's tolerance may judge it
    assert compare("\\frac{1}{3}", "0.333333") is Tier1Verdict.UNDECIDED
    assert compare("0.25", "0.3") is Tier1Verdict.DIFFERENT  # two plain decimals: exact as written
    assert compare("\\frac{1}{2004!}", "\\frac{1}{2006!}") is Tier1Verdict.DIFFERENT
    assert compare("(1,2]", "(1,2)") is Tier1Verdict.DIFFERENT  # same endpoints, other brackets
    assert compare("(-\\infty,-1)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,-1)") is Tier1Verdict.EQUAL
    assert compare("\\text{(C)}", "C") is Tier1Verdict.EQUAL
    assert compare("\\text{(C)}", "(D)") is Tier1Verdict.UNDECIDED  # a wrong letter: math-verify's call
    assert compare("(3,-4)", "(-4,3)") is Tier1Verdict.DIFFERENT
    assert compare("(\\frac{1}{2},3]", "(0.5,3]") is Tier1Verdict.EQUAL


@pytest.mark.parametrize(
    "gold,predicted,verdict",
    [
        # a mixed number is a sum, as in every textbook (and math-verify), never the product 3 * 1/2
        ("\\frac{7}{2}", "3\\frac{1}{2}", Tier1Verdict.EQUAL),
        ("\\frac{3}{2}", "3\\frac{1}{2}", Tier1Verdict.DIFFERENT),
        ("-\\frac{7}{2}", "-3 \\frac{1}{2}", Tier1Verdict.EQUAL),
        ("\\frac{5}{2}", "2 1/2", Tier1Verdict.UNDECIDED),  # whitespace between digits is never dropped
        ("21/2", "2 1/2", Tier1Verdict.UNDECIDED),
        ("\\frac{x}{2}", "1/2x", Tier1Verdict.UNDECIDED),  # (1/2)x or 1/(2x): ambiguous, decide nothing
        ("1000", "1,000", Tier1Verdict.UNDECIDED),  # thousands separator: math-verify reads it
        ("28\\%", "28", Tier1Verdict.EQUAL),  # a percent gold accepts the number, the percent and the fraction
        ("28\\%", "0.28", Tier1Verdict.EQUAL),
        ("28\\%", "29", Tier1Verdict.UNDECIDED),
        ("5", "\\$5.00", Tier1Verdict.EQUAL),
        ("5", "\\$6", Tier1Verdict.UNDECIDED),  # decorated: never proven different
        ("x=5", "5", Tier1Verdict.EQUAL),
        ("x=5", "6", Tier1Verdict.UNDECIDED),
        ("(1,2),(3,4)", "(3,4),(1,2)", Tier1Verdict.UNDECIDED),  # a list of tuples, not one tuple
        ("[1,2,3]", "(1,2,3)", Tier1Verdict.UNDECIDED),  # a list may be written as a tuple
        ("x^2-1", "y^2-1", Tier1Verdict.UNDECIDED),  # other variable names: math-verify's call
    ],
)
def test_readings_textbooks_agree_on(gold, predicted, verdict):
    assert compare(gold, predicted) is verdict


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
        ("\\frac{22}{7}", "\\pi", Tier1Verdict.UNDECIDED),
        ("\\{1,4\\}", "\\{4,1\\}", Tier1Verdict.EQUAL),
        ("42", "n=42", Tier1Verdict.EQUAL),
        ("42", "42\\text{ ways}", Tier1Verdict.EQUAL),
        ("42", "43^\\circ", Tier1Verdict.UNDECIDED),  # a degree sign: never proven different
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
