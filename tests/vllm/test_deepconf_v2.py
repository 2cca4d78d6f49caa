"""The Model-Runner-V2 interface of DeepConfLogitsProcessor, with constructed inputs.

No GPU here, so the V2 runner cannot run; these tests build the exact objects it
passes (``LogitsProcRequestState``, ``LogitsContext``) and check chunked-prefill
rows, row reordering, slot reuse and preemption against the paper's rule.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm")

from vllm import SamplingParams  # noqa: E402
from vllm.v1.worker.gpu.sample.logits_processor import (  # noqa: E402
    LogitsContext,
    LogitsProcRequestState,
)
from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2  # noqa: E402

from vllm_plugins.deepconf.vllm_processor import DeepConfLogitsProcessor  # noqa: E402

VOCAB, EOS, SLOTS = 64, 5, 4


def conf(logits: np.ndarray, k: int = 20) -> float:
    x = logits.astype(np.float64)
    logp = x - x.max() - np.log(np.exp(x - x.max()).sum())
    return float(-np.sort(logp)[::-1][:k].mean())


def first_stop(confs, threshold, window):
    for i in range(window - 1, len(confs)):
        if np.mean(confs[i - window + 1 : i + 1]) < threshold:
            return i
    return None


def curve(seed: int, n: int = 30, drop_at: int = 15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale = np.where(np.arange(n) < drop_at, 4.0, 0.5)[:, None] * rng.uniform(0.8, 1.2, (n, 1))
    return (rng.standard_normal((n, VOCAB)) * scale).astype(np.float32)


def threshold_for(logits: np.ndarray, window: int) -> tuple[float, int]:
    confs = [conf(x) for x in logits]
    means = np.convolve(confs, np.ones(window) / window, mode="valid")
    for j in range(1, len(means)):
        if means[j] < means[:j].min() - 1e-3:
            thr = float((means[j] + means[:j].min()) / 2)
            return thr, first_stop(confs, thr, window)
    raise AssertionError("no usable threshold")


class Runner:
    """Plays the V2 model runner: per-slot prompt/prefill lengths and the per-step context."""

    def __init__(self):
        self.prompt_len = torch.zeros(SLOTS, dtype=torch.int32)
        self.prefill_len = torch.zeros(SLOTS, dtype=torch.int32)
        req_states = LogitsProcRequestState(
            device=torch.device("cpu"),
            max_num_reqs=SLOTS,
            vocab_size=VOCAB,
            all_token_ids=None,
            prompt_len=SimpleNamespace(gpu=self.prompt_len),
            prefill_len=SimpleNamespace(gpu=self.prefill_len),
            total_len=None,
        )
        config = SimpleNamespace(
            speculative_config=None, model_config=SimpleNamespace(hf_config=SimpleNamespace(eos_token_id=EOS))
        )
        self.proc = DeepConfLogitsProcessor(config, req_states)

    def add(self, slot, prompt_len, prefill_len, extra=None) -> bool:
        self.prompt_len[slot], self.prefill_len[slot] = prompt_len, prefill_len
        return self.proc.add_request(slot, SamplingParams(extra_args=extra))

    def step(self, rows: list[tuple[int, int, np.ndarray]]) -> torch.Tensor:
        """rows: (slot, position of the fed token, logits). Returns the processed logits."""
        slots = torch.tensor([r[0] for r in rows], dtype=torch.int32)
        ctx = LogitsContext(
            expanded_idx_mapping=slots,
            idx_mapping=slots,
            idx_mapping_np=slots.numpy(),
            expanded_local_pos=torch.zeros(len(rows), dtype=torch.int32),
            input_ids=torch.zeros(len(rows), dtype=torch.int32),
            pos=torch.tensor([r[1] for r in rows], dtype=torch.int64),
            seq_lens_upper_bound_np=np.array([r[1] + 1 for r in rows]),
        )
        return self.proc.apply(torch.tensor(np.stack([r[2] for r in rows])), ctx)


def is_forced(row: torch.Tensor) -> bool:
    return bool(torch.isinf(row).sum() == VOCAB - 1 and row[EOS] == 0)


def test_class_is_a_v2_processor_and_plain_requests_are_declined():
    r = Runner()
    assert isinstance(r.proc, V2)
    assert r.add(0, 4, 4) is False
    assert r.add(1, 4, 4, {"deepconf_threshold": 1.0}) is True


def test_chunked_prefill_reordered_rows_and_an_untouched_neighbour():
    window = 4
    a, b = curve(1), curve(2)
    thr, expected = threshold_for(a, window)
    r = Runner()
    r.add(2, 7, 7, {"deepconf_threshold": thr, "deepconf_window": window})
    r.add(0, 3, 3)  # plain request
    # step 0: A's first prefill chunk ends at position 3 (< prefill_len 7): its row must not count
    out = r.step([(2, 3, b[0]), (0, 2, b[1])])
    assert torch.equal(out, torch.tensor(np.stack([b[0], b[1]])))
    assert r.proc.state.ring[2].abs().sum() == 0  # nothing recorded for the discarded token
    stopped_at = None
    for i in range(len(a)):
        pos_a = 6 + i  # last prefill token at 6, then one decode step per token
        rows = [(0, 3 + i, b[i]), (2, pos_a, a[i])] if i % 2 else [(2, pos_a, a[i]), (0, 3 + i, b[i])]
        out = r.step(rows)
        row_a = out[1] if i % 2 else out[0]
        row_b = out[0] if i % 2 else out[1]
        assert torch.equal(row_b, torch.tensor(b[i]))
        if is_forced(row_a):
            stopped_at = i
            break
        assert torch.equal(row_a, torch.tensor(a[i]))
    assert stopped_at == expected


def drive(r: Runner, slot: int, first_pos: int, logits: np.ndarray) -> int | None:
    for i, row in enumerate(logits):
        if is_forced(r.step([(slot, first_pos + i, row)])[0]):
            return i
    return None


def test_slot_reuse_reinitialises_everything():
    window = 3
    first, second = curve(3), curve(4, drop_at=20)
    r = Runner()
    thr1, _ = threshold_for(first, window)
    r.add(1, 5, 5, {"deepconf_threshold": thr1, "deepconf_window": window, "deepconf_top_k": 20})
    assert drive(r, 1, 4, first) is not None
    # a new request in the same slot: own threshold, own window, empty history
    thr2, expected2 = threshold_for(second, 5)
    r.add(1, 2, 2, {"deepconf_threshold": thr2, "deepconf_window": 5})
    assert drive(r, 1, 1, second) == expected2
    # and a plain request in that slot is untouched again
    r.add(1, 2, 2)
    out = r.step([(1, 1, second[-1])])
    assert torch.equal(out[0], torch.tensor(second[-1]))


def test_resume_after_preemption_restarts_the_window_at_the_resume_point():
    window = 4
    a = curve(5)
    thr, expected = threshold_for(a, window)
    r = Runner()
    # resumed: prompt 6 tokens + 10 outputs re-prefilled; history before the resume is gone
    r.add(3, 6, 16, {"deepconf_threshold": thr, "deepconf_window": window})
    assert drive(r, 3, 15, a) == expected
