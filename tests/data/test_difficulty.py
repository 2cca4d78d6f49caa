"""Difficulty weights (paper: hard x1.25-1.75, medium x1, easy x0.5 or dropped) and their resampling."""

from __future__ import annotations

import math

import pytest

from verl_falcon_plugin.data.difficulty import DifficultyConfig, difficulty_weight, resampled_copies


def chat(answer: str = "<think>r</think>\nok", **extra):
    return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}], **extra}


CONFIG = DifficultyConfig()


@pytest.mark.parametrize(
    "pass_rate,expected",
    [(0.0, 1.75), (0.125, 1.5), (0.25, 1.25), (0.5, 1.0), (0.875, 0.5), (1.0, 0.5)],
)
def test_weight_by_pass_rate(pass_rate, expected):
    assert difficulty_weight(chat(pass_rate=pass_rate), CONFIG) == pytest.approx(expected)


def test_weight_by_trace_length_when_no_pass_rate():
    assert difficulty_weight(chat("x" * 100), CONFIG) == 0.5
    assert difficulty_weight(chat("x" * 10_000), CONFIG) == 1.0
    assert difficulty_weight(chat("x" * 24_000), CONFIG) == pytest.approx(1.25)
    assert difficulty_weight(chat("x" * 100_000), CONFIG) == pytest.approx(1.75)


def test_easy_can_be_dropped():
    assert difficulty_weight(chat(pass_rate=1.0), DifficultyConfig(drop_easy=True)) == 0.0


def test_bad_pass_rate_is_named():
    with pytest.raises(ValueError, match="pass_rate"):
        difficulty_weight(chat(pass_rate=1.5), CONFIG)


@pytest.mark.parametrize("weight", [0.5, 1.0, 1.25, 1.75])
def test_resampling_realises_the_weight_in_expectation(weight):
    n = 20_000
    copies = [resampled_copies(weight, f"row-{i}", seed=3) for i in range(n)]
    assert set(copies) <= {math.floor(weight), math.floor(weight) + 1}
    # binomial: mean within 4 standard errors of the weight
    fraction = weight - math.floor(weight)
    stderr = math.sqrt(fraction * (1 - fraction) / n) or 1e-12
    assert abs(sum(copies) / n - weight) <= 4 * stderr


def test_resampling_is_deterministic_per_key_and_seed():
    keys = [f"row-{i}" for i in range(200)]
    first = [resampled_copies(1.5, k, 0) for k in keys]
    assert first == [resampled_copies(1.5, k, 0) for k in keys]
    assert first != [resampled_copies(1.5, k, 1) for k in keys]
