"""Step time of the streaming SFT loader with 0 vs 2 tokenising workers (``data.num_workers``).

The loader is the one the plugin's SFT hook builds for verl's trainer (a ``StatefulDataLoader`` over the
dataset, verl's ``SFTTensorCollator``); the dataset tokenises in its own worker processes. Long traces.
A training step is stood in for by a sleep of ``--compute`` ms: on a GPU machine
the CPU mostly waits while the GPU runs the step, which is the time workers can tokenise the next batch
in. With ``--compute auto`` it is the median tokenise-and-collate time of one batch without workers,
measured first (the case where overlap can hide the most). Each configuration runs ``--repeats`` times
after one warm-up; a repeat is ``--steps`` steps (one epoch; the workers' prefetch of about two batches
carries over epoch boundaries). Printed: per-step time min/median/max over repeats, the ratio to 0
workers measured in the same run, and the machine load. Run it with ``TOKENIZERS_PARALLELISM=false``
(as the Makefile does), or the main process's tokenizer threads compete with the workers.

    TOKENIZERS_PARALLELISM=false python benchmarks/data_streaming_workers.py   # ~1-2 min on 2 cores
    python benchmarks/data_streaming_workers.py --workers 0 2 4 --compute 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_corpus(path: Path, rows: int, trace_words: int) -> None:
    rng = random.Random(0)
    words = "so we get the sum is prime therefore compute square root of".split()
    with open(path, "w") as handle:
        for index in range(rows):
            trace = " ".join(rng.choice(words) for _ in range(trace_words))
            answer = f"<think>{trace}</think>\nThe answer is \\boxed{{{index}}}"
            messages = [{"role": "user", "content": f"question {index}"}, {"role": "assistant", "content": answer}]
            handle.write(json.dumps({"messages": messages, "pass_rate": 0.5}) + "\n")


def make_loader(path: Path, workers: int, batch: int, steps: int):
    """The dataset with ``data.num_workers=workers`` in the loader the plugin's SFT hook builds for it."""
    from torchdata.stateful_dataloader import StatefulDataLoader
    from verl.utils.dataset.dataset_utils import SFTTensorCollator

    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset
    from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer

    config = {
        "pad_mode": "no_padding",
        "max_length": 65536,
        "truncation": "right",
        "num_workers": workers,
        "streaming": {"sources": [{"name": "math", "files": [str(path)], "probability": 1.0}],
                      "samples_per_epoch": batch * steps, "difficulty": {"enabled": False}},
    }  # fmt: skip
    dataset = StreamingSFTDataset(None, build_chat_tokenizer(), config)
    dataset.shard(dp_rank=0, dp_size=1, batch_size=batch)
    return StatefulDataLoader(dataset, batch_size=batch, collate_fn=SFTTensorCollator("no_padding"), drop_last=True)


def run_epoch(loader, compute_s: float) -> list[float]:
    """Per-step wall time of one epoch: fetch the batch, then 'train' (sleep)."""
    times = []
    start = time.perf_counter()
    for _batch in loader:
        time.sleep(compute_s)
        now = time.perf_counter()
        times.append(now - start)
        start = now
    return times


def measure(path: Path, workers: int, args, compute_s: float) -> list[float]:
    """Median step time of each repeat (one warm-up epoch first: worker start-up is not a step)."""
    loader = make_loader(path, workers, args.batch, args.steps)
    run_epoch(loader, compute_s)
    return [statistics.median(run_epoch(loader, compute_s)) for _ in range(args.repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch", type=int, default=4, help="samples per step (per DP rank)")
    parser.add_argument("--steps", type=int, default=16, help="steps per repeat (one epoch)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--trace-words", type=int, default=3000, help="reasoning words per sample")
    parser.add_argument("--compute", default="auto", help="ms of stand-in GPU step per step, or 'auto'")
    args = parser.parse_args()
    if 0 not in args.workers:
        args.workers = [0, *args.workers]  # the baseline of the ratios

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "math.jsonl"
        write_corpus(path, rows=args.batch * args.steps * 2, trace_words=args.trace_words)
        if args.compute == "auto":
            compute_s = statistics.median(measure(path, 0, args, 0.0))
        else:
            compute_s = float(args.compute) / 1000
        load = os.getloadavg()[0]
        results = {w: measure(path, w, args, compute_s) for w in args.workers}
        load_after = os.getloadavg()[0]

    base = statistics.median(results[0])
    print(f"streaming SFT loader, batch {args.batch}, {args.trace_words} reasoning words per sample, "
          f"stand-in step {compute_s * 1000:.1f} ms, {args.repeats} repeats of {args.steps} steps; "
          f"load average {load:.2f} -> {load_after:.2f} on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'workers':>7} {'step ms min':>11} {'median':>8} {'max':>8} {'median vs 0 workers':>20}")
    report = {"settings": vars(args) | {"compute_ms": compute_s * 1000, "load": [load, load_after]}, "runs": {}}
    for workers, medians in results.items():
        low, mid, high = min(medians), statistics.median(medians), max(medians)
        ratio = mid / base
        print(f"{workers:>7} {low * 1000:>11.1f} {mid * 1000:>8.1f} {high * 1000:>8.1f} {ratio:>20.3f}")
        report["runs"][str(workers)] = {"step_ms": [m * 1000 for m in medians], "median_vs_0_workers": ratio}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_streaming_workers.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
