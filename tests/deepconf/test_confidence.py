"""Confidence measures against the DeepConf formulas, by hand and by property."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vllm_plugins.deepconf import (
    bottom_group_confidence,
    keep_top_threshold,
    lowest_group_confidence,
    mean_confidence,
    sliding_group_confidence,
    tail_confidence,
    token_confidence,
    topk_from_vllm_logprobs,
)

confs_lists = st.lists(st.floats(0.0, 20.0, allow_nan=False), min_size=1, max_size=60)


def test_token_confidence_by_hand():
    # C = -(1/k) sum_j log P(j): probabilities 1/2, 1/4, 1/4 -> (log 2 + 2 log 4) / 3
    lp = np.log([[0.5, 0.25, 0.25]])
    assert token_confidence(lp)[0] == pytest.approx((math.log(2) + 2 * math.log(4)) / 3, abs=1e-12)
    assert token_confidence(np.log([[1.0, 1.0]]))[0] == 0.0


def test_token_confidence_works_on_stacked_tokens():
    lp = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    np.testing.assert_allclose(token_confidence(lp), [math.log(2), -(math.log(0.9) + math.log(0.1)) / 2])


def test_sliding_groups_by_hand():
    np.testing.assert_allclose(sliding_group_confidence([1, 2, 3, 4, 5], window=2), [1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(sliding_group_confidence([1, 2, 3], window=3), [2.0])
    np.testing.assert_allclose(sliding_group_confidence([1, 2, 3], window=10), [2.0])  # shorter: one mean


def test_trace_level_measures_by_hand():
    confs = [4.0, 1.0, 1.0, 6.0, 8.0, 2.0]
    # window 2 means: 2.5, 1, 3.5, 7, 5
    assert lowest_group_confidence(confs, window=2) == 1.0
    assert bottom_group_confidence(confs, window=2, fraction=0.4) == pytest.approx((1.0 + 2.5) / 2)
    assert bottom_group_confidence(confs, window=2, fraction=0.1) == 1.0  # at least one window
    assert tail_confidence(confs, tail=2) == 5.0
    assert tail_confidence(confs, tail=100) == pytest.approx(22 / 6)
    assert mean_confidence(confs) == pytest.approx(22 / 6)


def test_vllm_logprobs_keep_top_k_only():
    # vLLM adds the sampled token as a 21st entry when it ranks below 20; it must not be averaged
    step = {i: -0.1 * i for i in range(20)} | {999: -30.0}
    top = topk_from_vllm_logprobs(step, k=20)
    assert len(top) == 20 and -30.0 not in top
    assert token_confidence(top) != pytest.approx(-np.mean(list(step.values())))
    with pytest.raises(ValueError, match="k=20"):
        topk_from_vllm_logprobs({0: -1.0}, k=20)


@pytest.mark.parametrize("bad", [[], [[1.0]]])
def test_bad_confs_are_rejected(bad):
    with pytest.raises(ValueError, match="confs"):
        mean_confidence(bad)


def test_bad_window_is_rejected():
    with pytest.raises(ValueError, match="window"):
        sliding_group_confidence([1.0], window=0)


@settings(max_examples=60, deadline=None)
@given(confs_lists, st.integers(1, 20))
def test_sliding_groups_equal_the_naive_definition(confs, window):
    got = sliding_group_confidence(confs, window)
    if len(confs) <= window:
        expected = [sum(confs) / len(confs)]
    else:
        expected = [sum(confs[i : i + window]) / window for i in range(len(confs) - window + 1)]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(confs_lists, st.integers(1, 20), st.floats(0.01, 1.0))
def test_order_of_trace_measures(confs, window, fraction):
    lowest = lowest_group_confidence(confs, window)
    bottom = bottom_group_confidence(confs, window, fraction)
    groups = sliding_group_confidence(confs, window)
    assert lowest <= bottom + 1e-9 <= groups.mean() + 2e-9
    assert min(confs) - 1e-9 <= lowest


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5), min_size=1, max_size=40), st.floats(0.01, 1.0))
def test_keep_top_keeps_about_eta(scores, eta):
    thr = keep_top_threshold(scores, eta)
    kept = int(np.sum(np.asarray(scores) >= thr))
    # numpy's linear percentile sits at sorted position p = (1 - eta)(n - 1): every score from
    # sorted[ceil(p)] up is kept, and with distinct scores nothing below sorted[floor(p)]
    n, p = len(scores), (1 - eta) * (len(scores) - 1)
    # (the 1e-9 slack always weakens the bound: numpy computes p with its own rounding)
    assert kept >= n - math.ceil(p + 1e-9)
    if len(set(scores)) == n:
        assert kept <= n - math.floor(p - 1e-9)


def test_keep_top_direction():
    scores = list(range(100))
    assert keep_top_threshold(scores, 0.1) == pytest.approx(89.1)  # aggressive: keeps ~top 10
    assert keep_top_threshold(scores, 0.9) == pytest.approx(9.9)  # conservative: keeps ~top 90
    with pytest.raises(ValueError, match="eta"):
        keep_top_threshold(scores, 10)  # a percentage, not a fraction
