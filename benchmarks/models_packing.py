"""Packed Falcon-H1 forward+backward vs the padded batch verl runs without remove-padding.

Many short sequences (verl's micro-batches on short SFT/RL samples), measured in the same
run on the same weights, the same next-token loss over all real tokens:

* **padded batch** (the baseline): unpatched HF, one right-padded batch with an attention
  mask: what verl runs with ``use_remove_padding=False``. Correct, and the compute spent on
  the padding is the waste packing removes;
* **one-by-one**: unpatched HF, each sequence its own forward+backward;
* **packed**: ``patch_falcon_h1``, one packed row, boundaries from ``position_ids``;
* **one long sequence** (the physical limit): the same patched model on ONE sequence of as many
  tokens as all the packed ones: the same kernels over the same tokens with no boundary to keep.
  Projections, MLP, conv and scan cost the same; attention costs more (quadratic in the
  sequence), so packing may even beat it. A packed step much slower than this would mean the
  boundaries themselves cost time.

The machine is shared and loaded, so the variants run in interleaved rounds (rotated order),
each ratio is taken within a round (both sides under the same load), and rounds continue
until the median of every ratio is stable: the 95% interval of the median
(1.57 x IQR / sqrt(n), McGill et al.) within ``--tolerance`` of it, or ``--max-rounds`` /
``--max-seconds``. Stability is judged on CPU time, which for this single-threaded process
hardly moves with the load (wall time on a loaded 2-core machine can swing 3x within a round);
both are printed, with min/median/max of every time and ratio and the load average before and
after. Writes ``benchmarks/results/models_packing.json``.

    python benchmarks/models_packing.py                  # 1-3 min on one core
    python benchmarks/models_packing.py --sequences 16   # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
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


def step_long_sequence(model, sequences) -> None:
    """The physical limit: one sequence of as many tokens as all of them (nothing to keep apart)."""
    ids = torch.cat(sequences)
    positions = torch.arange(len(ids))[None]  # the patched model's packed path, with a single sequence
    logits = model(input_ids=ids[None], position_ids=positions, use_cache=False).logits[0]
    F.cross_entropy(logits, next_token_targets(ids), ignore_index=-100).backward()


BASELINE = "padded_batch"


def timed(step, model, sequences) -> tuple[float, float]:
    """(wall, CPU) seconds of one step; gradients cleared outside the timing."""
    wall, cpu = time.perf_counter(), time.process_time()
    step(model, sequences)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model.zero_grad(set_to_none=True)
    return wall, cpu


def median_interval(values: list[float]) -> float:
    """Half-width of the 95% interval of the median, relative to it (1.57 IQR / sqrt n)."""
    if len(values) < 4:
        return float("inf")
    q1, _, q3 = statistics.quantiles(values, n=4)
    return 1.57 * (q3 - q1) / len(values) ** 0.5 / statistics.median(values)


def spread(values: list[float]) -> dict[str, float]:
    return dict(min=min(values), median=statistics.median(values), max=max(values))


def run_rounds(variants: dict, sequences, args) -> tuple[dict, dict, int, bool]:
    """Interleaved rounds until every within-round ratio to the baseline has a stable median."""
    for step, model in variants.values():  # warm-up
        timed(step, model, sequences)
    times = {name: {"wall": [], "cpu": []} for name in variants}
    ratios = {name: {"wall": [], "cpu": []} for name in variants if name != BASELINE}
    names, start, stable = list(variants), time.perf_counter(), False
    for round_no in range(args.max_rounds):
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        this_round = {name: timed(*variants[name], sequences) for name in order}
        for name, (wall, cpu) in this_round.items():
            times[name]["wall"].append(wall)
            times[name]["cpu"].append(cpu)
        for name in ratios:  # speed of the variant relative to the padded batch, same round
            ratios[name]["wall"].append(this_round[BASELINE][0] / this_round[name][0])
            ratios[name]["cpu"].append(this_round[BASELINE][1] / this_round[name][1])
        rounds = round_no + 1
        stable = rounds >= args.min_rounds and all(median_interval(r["cpu"]) <= args.tolerance for r in ratios.values())
        if stable or time.perf_counter() - start > args.max_seconds:
            break
    return times, ratios, rounds, stable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=48)
    parser.add_argument("--min-len", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=96)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--min-rounds", type=int, default=5)
    parser.add_argument("--max-rounds", type=int, default=40)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="stop after this long even if not stable")
    parser.add_argument("--tolerance", type=float, default=0.05, help="stable: 95%% interval of each median ratio")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the 2-core machine is shared)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    reference = tiny_falcon_h1(REALISTIC_GEOMETRY, num_hidden_layers=args.layers, mamba_chunk_size=32).train()
    packed = copy.deepcopy(reference)
    patch_falcon_h1(packed)
    sequences = make_sequences(args.sequences, args.min_len, args.max_len, reference.config.vocab_size)
    tokens = sum(len(s) for s in sequences)
    padded_tokens = len(sequences) * max(len(s) for s in sequences)
    variants = {
        BASELINE: (step_padded, reference),
        "one_by_one": (step_one_by_one, reference),
        "packed": (step_packed, packed),
        "one_long_sequence": (step_long_sequence, packed),
    }
    load_before = os.getloadavg()
    times, ratios, rounds, stable = run_rounds(variants, sequences, args)
    load_after = os.getloadavg()

    print(
        f"{args.sequences} sequences of {args.min_len}-{args.max_len} tokens: {tokens} tokens "
        f"({padded_tokens} padded, {padded_tokens / tokens:.2f}x), {args.layers} layers, fwd+bwd, "
        f"{torch.get_num_threads()} thread(s)"
    )
    print(
        f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {_load(load_before)} before, "
        f"{_load(load_after)} after; {rounds} interleaved rounds, "
        + ("CPU-time ratios stable" if stable else f"NOT stable within {args.tolerance:.0%} (limit reached)")
        + f"; wall-time ratios within {max(median_interval(r['wall']) for r in ratios.values()):.0%}"
    )
    print(f"\n{'variant':20s} {'wall ms min / median / max':>30s} {'CPU ms median':>14s} {'tokens/s':>9s}")
    for name, t in times.items():
        w = spread(t["wall"])
        print(
            f"{name:20s} {w['min'] * 1e3:9.1f} /{w['median'] * 1e3:9.1f} /{w['max'] * 1e3:9.1f} "
            f"{statistics.median(t['cpu']) * 1e3:14.1f} {tokens / w['median']:9.0f}"
        )
    print("\nspeed relative to the padded batch (use_remove_padding=False), paired within each round:")
    print(f"{'variant':20s} {'wall min / median / max':>26s} {'CPU median':>11s}")
    for name, r in ratios.items():
        w = spread(r["wall"])
        cpu = statistics.median(r["cpu"])
        print(f"{name:20s} {w['min']:7.2f}x /{w['median']:7.2f}x /{w['max']:7.2f}x {cpu:10.2f}x")
    limit = {k: [a / b for a, b in zip(times["one_long_sequence"][k], times["packed"][k])] for k in ("wall", "cpu")}
    print(
        f"packed vs the physical limit (one sequence of {tokens} tokens, same model): "
        f"{spread(limit['cpu'])['median']:.2f}x its speed in CPU time, "
        f"{spread(limit['wall'])['median']:.2f}x in wall time"
    )

    result = dict(
        config=dict(vars(args), geometry="REALISTIC_GEOMETRY", tokens=tokens, padded_tokens=padded_tokens),
        machine=dict(cpus=os.cpu_count(), load_before=load_before, load_after=load_after),
        rounds=rounds,
        stable=stable,
        baseline=BASELINE,
        seconds={name: {k: spread(v) for k, v in t.items()} for name, t in times.items()},
        speed_vs_padded_batch={name: {k: spread(v) for k, v in r.items()} for name, r in ratios.items()},
        packed_vs_physical_limit={k: spread(v) for k, v in limit.items()},
    )
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "models_packing.json"
    path.with_suffix(".tmp").write_text(json.dumps(result, indent=2))
    os.replace(path.with_suffix(".tmp"), path)
    print(f"wrote {path}")


def _load(load: tuple[float, float, float]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


if __name__ == "__main__":
    main()
