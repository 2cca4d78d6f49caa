"""The online controller (Algorithm 2) on scripted and synthetic trace generators."""

from __future__ import annotations

import numpy as np
import pytest

from verl_falcon_plugin.testing.deepconf_traces import SyntheticPopulation
from vllm_plugins.deepconf import OnlineConfig, Trace, lowest_group_confidence, run_online, stop_index


class Scripted:
    """Warm-up traces with C_least 1..n_init, then online traces that stop per the rule."""

    def __init__(self, online_curve: np.ndarray, answer: str = "7"):
        self.calls: list[tuple[int, float | None, int]] = []
        self.online_curve = online_curve
        self.answer = answer

    def generate(self, num_traces, threshold, window):
        self.calls.append((num_traces, threshold, window))
        if threshold is None:
            return [Trace(np.full(window, float(i + 1)), "w", False) for i in range(num_traces)]
        stop = stop_index(self.online_curve, threshold, window)
        if stop is None:
            return [Trace(self.online_curve, self.answer, False) for _ in range(num_traces)]
        return [Trace(self.online_curve[: stop + 1], None, True) for _ in range(num_traces)]


def test_threshold_is_the_eta_kept_percentile_of_warmup_lowest_groups():
    gen = Scripted(np.full(8, 100.0))
    res = run_online(gen, OnlineConfig(budget=10, n_init=10, eta=0.1, window=4))
    # C_least = 1..10; keep top 10 % -> numpy percentile 90 of 1..10 = 9.1
    assert res.threshold == pytest.approx(9.1)
    res = run_online(Scripted(np.full(8, 100.0)), OnlineConfig(budget=10, n_init=10, eta=0.9, window=4))
    assert res.threshold == pytest.approx(1.9)


def test_threshold_order_aggressive_above_conservative():
    for seed in range(3):
        hi = run_online(SyntheticPopulation(seed=seed, mean_length=400), OnlineConfig(32, 16, 0.1, 64, 8))
        lo = run_online(SyntheticPopulation(seed=seed, mean_length=400), OnlineConfig(32, 16, 0.9, 64, 8))
        assert hi.threshold > lo.threshold
        assert hi.num_stopped >= lo.num_stopped


def test_warmup_runs_unstopped_then_batches_use_the_threshold():
    gen = Scripted(np.full(8, 100.0))
    res = run_online(gen, OnlineConfig(budget=20, n_init=4, eta=0.5, window=4, batch_size=6))
    assert gen.calls[0] == (4, None, 4)
    assert [c[0] for c in gen.calls[1:]] == [6, 6, 4]
    assert all(c[1] == res.threshold for c in gen.calls[1:])
    assert len(res.traces) == 20 and res.stop_reason == "budget"


def test_every_token_is_counted_including_stopped_traces():
    curve = np.array([10.0] * 6 + [0.0] * 10)  # window-4 mean drops below 9.1 at index 6
    gen = Scripted(curve)
    res = run_online(gen, OnlineConfig(budget=13, n_init=10, eta=0.1, window=4, batch_size=3))
    assert res.num_stopped == 3
    assert all(t.num_tokens == 7 for t in res.online)  # stopped at index 6, EOS included
    assert res.total_tokens == 10 * 4 + 3 * 7
    # stopped traces never vote; the warm-up answer wins
    assert res.votes["majority"] == "w"


def test_consensus_and_token_budget_end_the_run_early():
    gen = Scripted(np.full(8, 100.0))
    res = run_online(gen, OnlineConfig(budget=100, n_init=4, eta=0.5, window=4, batch_size=4, consensus=0.9))
    assert res.stop_reason == "consensus" and len(res.traces) == 4  # the warm-up all agree
    gen = Scripted(np.full(8, 100.0))
    res = run_online(gen, OnlineConfig(budget=100, n_init=4, eta=0.5, window=4, batch_size=4, token_budget=40))
    # warm-up 4 x 4 tokens, then one batch of 4 x 8 = 48 >= 40: no second batch
    assert res.stop_reason == "token_budget" and res.total_tokens == 48 and len(res.traces) == 8


def test_synthetic_stopped_traces_match_the_rule():
    pop = SyntheticPopulation(seed=1, mean_length=300)
    traces = pop.generate(20, threshold=12.5, window=32)
    stopped = [t.stopped_early for t in traces]
    assert any(stopped) and not all(stopped), "the population must exercise both branches below"
    for t, full in zip(traces, pop.full_lengths):
        if t.stopped_early:
            assert t.answer is None and t.num_tokens < full
            means = np.convolve(t.confs, np.ones(32) / 32, mode="valid")
            assert means[-1] < 12.5 and (means[:-1] >= 12.5).all()
    assert lowest_group_confidence(traces[0].confs, 32) > 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(n_init=0), "n_init"),
        (dict(budget=4, n_init=8), "budget"),
        (dict(eta=10), "eta"),
        (dict(consensus=0.3), "consensus"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        OnlineConfig(**kwargs)
