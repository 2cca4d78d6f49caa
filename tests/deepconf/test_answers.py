"""Answer extraction: math_verify first, the last \\boxed{} as fallback, canonical strings."""

from __future__ import annotations

import pytest

from vllm_plugins.deepconf import canonical, extract_answer, last_boxed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{42}", "42"),
        ("so \\boxed{42.0}", "42"),  # same value, same vote
        ("we get \\boxed{\\frac{1}{2}}", "1/2"),
        ("hence x = 0.5", "1/2"),  # not boxed: math_verify reads the final expression
        # math_verify (boxed="all") returns every boxed answer as a set, unlike the reference's last-box rule
        ("first \\boxed{3} then \\boxed{5}", "{3, 5}"),
        ("nothing to see", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_equal_values_get_equal_canonical_strings():
    assert extract_answer("\\boxed{0.5}") == extract_answer("\\boxed{\\frac{2}{4}}") == "1/2"


def test_last_boxed_matches_braces_and_rejects_cut_traces():
    assert last_boxed("a \\boxed{\\frac{1}{\\sqrt{2}}} b") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("\\boxed{12") is None  # a stopped trace cut inside the box
    assert last_boxed("no box") is None


def test_boxed_fallback_when_math_verify_finds_nothing(monkeypatch):
    import math_verify

    monkeypatch.setattr(math_verify, "parse", lambda text, **kw: [])
    assert extract_answer("the answer is \\boxed{ A B }") == "AB"
    assert canonical(" x  y ") == "xy"
