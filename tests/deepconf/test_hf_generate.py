"""DeepConf early stop in HF ``generate`` on a tiny Falcon-H1 (CPU).

The reference is unpatched ``generate``: the same greedy decode, with its raw
per-step logits (``output_logits``) giving the token confidences by the formula.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from verl_falcon_plugin.testing import tiny_falcon_h1  # noqa: E402
from vllm_plugins.deepconf import DeepConfArgs  # noqa: E402
from vllm_plugins.deepconf.hf import DeepConfLogitsProcessor, DeepConfStoppingCriteria  # noqa: E402

EOS, PAD, NEW, WINDOW, TOP_K = 2, 0, 24, 4, 20


def formula_confs(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    logp = x - x.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    return -np.sort(logp, axis=-1)[..., ::-1][..., :TOP_K].mean(-1)


def first_stop(confs, threshold):
    for i in range(WINDOW - 1, len(confs)):
        if confs[i - WINDOW + 1 : i + 1].mean() < threshold:
            return i
    return None


@pytest.fixture(scope="module")
def model_and_reference():
    model = tiny_falcon_h1(seed=3)
    prompts = torch.randint(3, 256, (3, 6), generator=torch.Generator().manual_seed(0))
    ref = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=False,
        # no cache: transformers 5.10.4's cached FalconH1 decode (torch fallback) leaks between batch rows
        use_cache=False,
        max_new_tokens=NEW,
        output_logits=True,
        return_dict_in_generate=True,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    # raw logits: with min_new_tokens (which masks EOS before our processor) they would differ
    all_confs = formula_confs(torch.stack(ref.logits, 1).numpy())  # [batch, steps]
    tokens = ref.sequences[:, prompts.shape[1] :]
    # a row that emits EOS by itself ends there: its confidences stop with the EOS token
    confs = []
    for row, c in zip(tokens, all_confs):
        eos = (row == EOS).nonzero()
        confs.append(c[: int(eos[0]) + 1] if len(eos) else c)
    return model, prompts, tokens, confs


def test_rows_stop_exactly_where_the_rule_says(model_and_reference):
    model, prompts, ref_tokens, confs = model_and_reference
    means = np.concatenate([np.convolve(c, np.ones(WINDOW) / WINDOW, mode="valid") for c in confs])
    # row 0 stops mid-way, the others wherever the rule says; the threshold sits in the widest gap
    # between window means (of all rows) that still makes row 0 stop mid-way: no knife edge
    values = np.unique(means)
    candidates = [((hi - lo), (hi + lo) / 2) for lo, hi in zip(values[:-1], values[1:])]
    gap, threshold = max(c for c in candidates if (s := first_stop(confs[0], c[1])) and WINDOW < s < NEW - 2)
    assert gap > 1e-4
    expected = [first_stop(c, threshold) for c in confs]
    assert ref_tokens[0, expected[0]] != EOS  # unpatched generate runs on

    proc = DeepConfLogitsProcessor(DeepConfArgs(threshold, WINDOW, TOP_K), EOS, prompts.shape[1])
    out = model.generate(
        prompts,
        attention_mask=torch.ones_like(prompts),
        do_sample=False,
        # no cache: transformers 5.10.4's cached FalconH1 decode (torch fallback) leaks between batch rows
        use_cache=False,
        max_new_tokens=NEW,
        logits_processor=transformers.LogitsProcessorList([proc]),
        stopping_criteria=transformers.StoppingCriteriaList([DeepConfStoppingCriteria(proc)]),
        eos_token_id=EOS,
        pad_token_id=PAD,
    )[:, prompts.shape[1] :]
    recorded = proc.trace_confidences()
    for row, stop in enumerate(expected):
        if stop is None:
            assert torch.equal(out[row, : ref_tokens.shape[1]], ref_tokens[row])
            assert not proc.stopped_early[row]
            np.testing.assert_allclose(recorded[row], confs[row], atol=1e-5)
        else:
            assert torch.equal(out[row, :stop], ref_tokens[row, :stop])
            assert out[row, stop] == EOS and bool(proc.stopped_early[row])
            assert (out[row, stop + 1 :] == PAD).all()
            np.testing.assert_allclose(recorded[row], confs[row][: stop + 1], atol=1e-5)


def test_online_controller_drives_hf_generate(model_and_reference):
    from verl_falcon_plugin.testing.tiny_llama import build_word_tokenizer
    from vllm_plugins.deepconf import OnlineConfig, run_online
    from vllm_plugins.deepconf.hf import HFTraceGenerator

    model = model_and_reference[0]
    tokenizer = build_word_tokenizer(256)
    tokenizer.eos_token_id == EOS or pytest.fail("the word tokenizer's EOS must be the model's")
    torch.manual_seed(0)
    generator = HFTraceGenerator(model, tokenizer, "w1 w2 w3", max_new_tokens=10, temperature=1.0, top_p=1.0)
    result = run_online(generator, OnlineConfig(budget=6, n_init=3, eta=0.9, window=3, batch_size=3, vote_window=3))
    assert len(result.traces) == 6 and not any(t.stopped_early for t in result.warmup)
    assert all(1 <= t.num_tokens <= 10 for t in result.traces)
    assert result.total_tokens == sum(len(t.confs) for t in result.traces)
    for t in result.online:
        if t.stopped_early:  # the recorded curve ends at the first window below the threshold
            means = np.convolve(t.confs, np.ones(3) / 3, mode="valid")
            assert means[-1] < result.threshold and (means[:-1] >= result.threshold).all()
