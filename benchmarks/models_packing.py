"""Packed Falcon-H1 forward+backward vs the same sequences one by one through unpatched transformers.

Many short sequences (verl's remove-padding micro-batches on short SFT/RL samples),
measured in the same run on the same weights:

* **one-by-one**: unpatched HF, each sequence its own forward+backward (the only way to
  get correct numbers from unpatched HF without a padding mask);
* **padded batch**: unpatched HF, one right-padded batch with an attention mask (correct
  for the mixer only because HF zeroes padded states; wastes compute on the padding);
* **packed**: ``patch_falcon_h1``, one packed row, boundaries from ``position_ids``.

The loss is the same next-token loss over all real tokens. Prints tokens/s and the
ratios packed/one-by-one and packed/padded; writes ``benchmarks/results/models_packing.json``.

    python benchmarks/models_packing.py                 # ~1 min on one core
    python benchmarks/models_packing.py --sequences 16  # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1
from verl_falcon_plugin.testing import REALISTIC_GEOMETRY, tiny_falcon_h1

RESULTS = Path(__file__).resolve().parent / "results"


def make_sequences(count: int, low: int, high: int, vocab: int, seed: int = 0) -> list[torch.Tensor]:
    rng = random.Random(seed)
    return [torch.randint(3, vocab, (rng.randint(low, high),)) for _ in range(count)]


def next_token_targets(sequence: torch.Tensor) -> torch.Tensor:
    return torch.cat([sequence[1:], torch.tensor([-100])])


def step_one_by_one(model, sequences) -> None:
    total = sum(len(s) for s in sequences)
    for s in sequences:
        logits = model(input_ids=s[None], use_cache=False).logits[0]
        (F.cross_entropy(logits, next_token_targets(s), ignore_index=-100, reduction="sum") / total).backward()


def step_padded(model, sequences) -> None:
    longest = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), longest, dtype=torch.long)
    mask = torch.zeros_like(ids)
    targets = torch.full_like(ids, -100)
    for row, s in enumerate(sequences):
        ids[row, : len(s)], mask[row, : len(s)], targets[row, : len(s)] = s, 1, next_token_targets(s)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100).backward()


def step_packed(model, sequences) -> None:
    ids = torch.cat(sequences)[None]
    positions = torch.cat([torch.arange(len(s)) for s in sequences])[None]
    targets = torch.cat([next_token_targets(s) for s in sequences])
    logits = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0]
    F.cross_entropy(logits, targets, ignore_index=-100).backward()


def seconds_per_step(step, model, sequences, repeats: int) -> float:
    step(model, sequences)  # warm-up
    model.zero_grad(set_to_none=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(model, sequences)
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=48)
    parser.add_argument("--min-len", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the 2-core machine is shared)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = tiny_falcon_h1(REALISTIC_GEOMETRY, num_hidden_layers=args.layers, mamba_chunk_size=32).train()
    packed = copy.deepcopy(reference)
    patch_falcon_h1(packed)
    sequences = make_sequences(args.sequences, args.min_len, args.max_len, reference.config.vocab_size)
    tokens = sum(len(s) for s in sequences)

    timings = {
        "one_by_one_unpatched_s": seconds_per_step(step_one_by_one, reference, sequences, args.repeats),
        "padded_batch_unpatched_s": seconds_per_step(step_padded, reference, sequences, args.repeats),
        "packed_patched_s": seconds_per_step(step_packed, packed, sequences, args.repeats),
    }
    result = dict(
        config=dict(vars(args), geometry="REALISTIC_GEOMETRY", tokens=tokens, threads=torch.get_num_threads()),
        **timings,
        speedup_packed_vs_one_by_one=timings["one_by_one_unpatched_s"] / timings["packed_patched_s"],
        speedup_packed_vs_padded=timings["padded_batch_unpatched_s"] / timings["packed_patched_s"],
    )
    print(
        f"{args.sequences} sequences of {args.min_len}-{args.max_len} tokens ({tokens} tokens), fwd+bwd, median of {args.repeats}:"
    )
    for name, seconds in timings.items():
        print(f"  {name:28s} {seconds * 1e3:8.1f} ms  ({tokens / seconds:8.0f} tokens/s)")
    print(f"packed / one-by-one speed ratio: {result['speedup_packed_vs_one_by_one']:.2f}x")
    print(f"packed / padded-batch speed ratio: {result['speedup_packed_vs_padded']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "models_packing.json"
    path.with_suffix(".tmp").write_text(json.dumps(result, indent=2))
    os.replace(path.with_suffix(".tmp"), path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
