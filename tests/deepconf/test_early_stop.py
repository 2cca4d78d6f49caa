"""The batched torch core shared by the vLLM and HF processors, on constructed logits."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

scipy_special = pytest.importorskip("scipy.special")

from vllm_plugins.deepconf import DeepConfArgs  # noqa: E402
from vllm_plugins.deepconf.early_stop import ConfidenceStopState  # noqa: E402

VOCAB, EOS = 50, 3


def numpy_conf(logits: np.ndarray, k: int) -> float:
    """DeepConf's token confidence from its definition, not from the package: C = -(1/k) sum of the
    k highest log-probabilities, with scipy's log-softmax (float64)."""
    logp = scipy_special.log_softmax(logits.astype(np.float64))
    return float(-np.sort(logp)[::-1][:k].mean())


def first_stop(confs, threshold, window):
    for i in range(window - 1, len(confs)):
        if np.mean(confs[i - window + 1 : i + 1]) < threshold:
            return i
    return None


def threshold_stopping_after(confs, window, earliest):
    """A threshold midway between a new running minimum of the window means (at >= earliest) and the prior minimum."""
    means = np.convolve(confs, np.ones(window) / window, mode="valid")
    for j in range(earliest - window + 1, len(means)):
        if means[j] < means[:j].min() - 1e-3:
            return float((means[j] + means[:j].min()) / 2)
    raise AssertionError("no usable running minimum")


def run_trace(state, slot, logits_seq, start_index=0):
    """Feed one slot's logits step by step; return (confs, index of the forced EOS or None)."""
    for step, logits in enumerate(logits_seq):
        batch = torch.tensor(logits[None, :], dtype=torch.float32)
        t = torch.tensor([0])
        out = state.step(batch, t, torch.tensor([slot]), torch.tensor([start_index + step]))
        assert not torch.isnan(out).any()
        if torch.isinf(out[0]).sum() == VOCAB - 1:
            return step
    return None


@pytest.fixture
def logits_seq():
    rng = np.random.default_rng(0)
    # peaked (high confidence) for 20 steps, then flat: the window mean falls after step 20
    scale = np.where(np.arange(40) < 20, 4.0, 0.5)[:, None] * rng.uniform(0.8, 1.2, size=(40, 1))
    return (rng.standard_normal((40, VOCAB)) * scale).astype(np.float32)


def test_confidence_matches_the_formula(logits_seq):
    state = ConfidenceStopState(4, "cpu", window_capacity=8)
    state.activate(2, DeepConfArgs(threshold=0.0, window=8, top_k=5), EOS)
    batch = torch.tensor(logits_seq[:3])
    got = state.token_confidence(batch, torch.tensor([2, 2, 2]))
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), [numpy_conf(x, 5) for x in logits_seq[:3]], atol=1e-5)
    # the check can fail: one more or one fewer log-prob in the mean is far outside 1e-5
    for wrong_k in (4, 6):
        assert np.abs(got.numpy() - [numpy_conf(x, wrong_k) for x in logits_seq[:3]]).max() > 1e-2


def test_forces_eos_exactly_at_the_first_window_below_threshold(logits_seq):
    confs = [numpy_conf(x, 20) for x in logits_seq]
    window = 4
    threshold = threshold_stopping_after(confs, window, earliest=8)
    expected = first_stop(confs, threshold, window)
    assert expected is not None and expected > window
    state = ConfidenceStopState(2, "cpu", window_capacity=window)
    state.activate(1, DeepConfArgs(threshold, window, 20), EOS)
    assert run_trace(state, 1, logits_seq) == expected


def test_forced_row_is_eos_only_and_never_nan():
    state = ConfidenceStopState(1, "cpu", window_capacity=1)
    state.activate(0, DeepConfArgs(threshold=1e9, window=1, top_k=2), EOS)
    logits = torch.randn(1, VOCAB)
    logits[0, EOS] = float("-inf")  # an earlier processor (min_tokens, bad words) masked EOS
    out = state.step(logits, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    probs = torch.softmax(out, -1)
    assert not torch.isnan(probs).any() and probs[0, EOS] == 1.0


def test_inactive_rows_are_bitwise_untouched(logits_seq):
    state = ConfidenceStopState(3, "cpu", window_capacity=1)
    state.activate(0, DeepConfArgs(threshold=1e9, window=1, top_k=2), EOS)
    batch = torch.tensor(logits_seq[:3])
    before = batch.clone()
    state.step(batch, torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    assert torch.equal(batch[1:], before[1:])
    assert not torch.equal(batch[0], before[0])  # the patched row did change


def test_slot_reuse_starts_from_a_clean_window(logits_seq):
    confs = [numpy_conf(x, 20) for x in logits_seq]
    window = 6
    state = ConfidenceStopState(1, "cpu", window_capacity=window)
    # first occupant: very high confidences in the ring would keep a polluted mean high
    state.activate(0, DeepConfArgs(threshold=0.0, window=window, top_k=20), EOS)
    run_trace(state, 0, np.full((10, VOCAB), 0.0, dtype=np.float32) + np.eye(VOCAB, dtype=np.float32)[:10] * -50)
    threshold = threshold_stopping_after(confs, window, earliest=8)
    state.activate(0, DeepConfArgs(threshold, window, 20), EOS)
    expected = first_stop(confs, threshold, window)
    assert expected is not None and run_trace(state, 0, logits_seq) == expected


def test_unrecorded_rows_do_not_count(logits_seq):
    """A partial-prefill row (record=False) leaves the ring as it was."""
    state = ConfidenceStopState(1, "cpu", window_capacity=2)
    state.activate(0, DeepConfArgs(threshold=1e9, window=2, top_k=20), EOS)
    batch = torch.tensor(logits_seq[:1])
    out = state.step(batch.clone(), torch.tensor([0]), torch.tensor([0]), torch.tensor([5]), torch.tensor([False]))
    assert torch.equal(out, batch) and state.ring.abs().sum() == 0


def test_move_and_swap_carry_the_state(logits_seq):
    state = ConfidenceStopState(3, "cpu", window_capacity=4)
    state.activate(0, DeepConfArgs(threshold=1.5, window=4, top_k=7), EOS)
    state.step(torch.tensor(logits_seq[:1]), torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    ring0 = state.ring[0].clone()
    state.move(0, 2)
    assert state.active_host == [False, False, True] and torch.equal(state.ring[2], ring0)
    assert state.top_k[2] == 7 and state.threshold[2] == 1.5
    state.swap(2, 1)
    assert state.active_host == [False, True, False] and torch.equal(state.ring[1], ring0)


def test_masked_tokens_are_left_out_and_the_ring_stays_finite():
    """Fewer than k allowed tokens (a grammar, bad words): the mean is over the finite top log-probs."""
    state = ConfidenceStopState(1, "cpu", window_capacity=2)
    state.activate(0, DeepConfArgs(threshold=0.5, window=2, top_k=20), EOS)
    logits = torch.full((1, VOCAB), float("-inf"))
    logits[0, :4] = torch.tensor([2.0, 1.0, 0.0, -1.0])
    conf = state.token_confidence(logits, torch.tensor([0]))
    logp = logits[0, :4] - torch.logsumexp(logits[0, :4], 0)
    assert torch.allclose(conf, -logp.mean().reshape(1))
    for step in range(4):
        state.step(logits.clone(), torch.tensor([0]), torch.tensor([0]), torch.tensor([step]))
        assert torch.isfinite(state.ring_sum).all()
