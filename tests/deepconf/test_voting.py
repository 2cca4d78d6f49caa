"""Voting: hand-computed cases from the definitions, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_plugins.deepconf import VOTING_METHODS, vote

# three traces for "A" with low confidence, two for "B" with high confidence
LOW, HIGH = [1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 5.0]
ANSWERS = ["A", "A", "A", "B", "B"]
CONFS = [LOW, LOW, LOW, HIGH, HIGH]


def test_majority_counts_traces():
    assert vote(ANSWERS, CONFS, "majority") == "A"


@pytest.mark.parametrize("method", ["mean", "tail", "bottom_window", "min_window"])
def test_weighted_methods_weight_by_confidence(method):
    # A: 3 x 1.0 = 3 < B: 2 x 5.0 = 10
    assert vote(ANSWERS, CONFS, method, window=2) == "B"


def test_keep_top_filters_before_voting():
    # majority filtered to the top 40 % by lowest group confidence keeps only the two B traces
    assert vote(ANSWERS, CONFS, "majority", window=2, keep_top=0.4) == "B"
    assert vote(ANSWERS, CONFS, "majority", window=2, keep_top=1.0) == "A"


def test_window_matters_for_min_window():
    # A's trace dips once; with window 1 the dip dominates, with window 4 it is averaged away
    a = [9.0, 9.0, 0.1, 9.0]
    b = [5.0, 5.0, 5.0, 5.0]
    assert vote(["A", "B"], [a, b], "min_window", window=1) == "B"
    assert vote(["A", "B"], [a, b], "min_window", window=4) == "A"


def test_tail_uses_the_last_tokens():
    a = [1.0] * 6 + [9.0, 9.0]
    b = [5.0] * 8
    assert vote(["A", "B"], [a, b], "tail", window=2) == "A"
    assert vote(["A", "B"], [a, b], "mean") == "B"


def test_none_answers_never_vote_and_ties_go_to_first():
    assert vote([None, None, "x"], [LOW, LOW, LOW], "majority") == "x"
    assert vote([None], [LOW], "mean") is None
    assert vote(["p", "q"], [LOW, LOW], "mean") == "p"


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="one entry per trace"):
        vote(["a"], [LOW, LOW], "majority")
    with pytest.raises(ValueError, match="unknown voting method"):
        vote(["a"], [LOW], "median")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.1, 10.0)), min_size=1, max_size=12),
    st.sampled_from(VOTING_METHODS),
)
def test_winner_has_the_largest_total_weight(traces, method):
    answers = [a for a, _ in traces]
    confs = [np.full(3, c) for _, c in traces]
    winner = vote(answers, confs, method, window=2)
    totals = {}
    for a, c in traces:
        totals[a] = totals.get(a, 0.0) + (1.0 if method == "majority" else c)
    assert totals[winner] == pytest.approx(max(totals.values()))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from("ab"), min_size=1, max_size=10), st.floats(0.1, 10.0))
def test_equal_confidences_reduce_to_majority(answers, c):
    confs = [np.full(4, c)] * len(answers)
    assert vote(answers, confs, "mean") == vote(answers, confs, "majority")
