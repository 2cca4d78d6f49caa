"""Streaming SFT dataset vs verl's in-memory ``MultiTurnSFTDataset`` on the same Parquet files.

Measures, each in a fresh subprocess (so RSS is not shared): throughput in samples/s
including tokenisation and loss masks, and peak RSS growth over the process after
imports, for a corpus and for the same corpus 10x larger (Parquet row groups of 128 rows:
the streaming reader holds one row group at a time). Prints the ratios and writes
``benchmarks/results/data_streaming.{json,md}``.

    python benchmarks/data_streaming.py            # ~1-2 min on 2 cores
    python benchmarks/data_streaming.py --rows 200 # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TRACE_WORDS = 3000  # ~16 KB of reasoning per sample: memory is dominated by the data


def write_corpus(path: Path, rows: int) -> None:
    import pandas as pd

    rng = random.Random(0)
    words = "so we get the sum is prime therefore compute square root of".split()
    records = []
    for index in range(rows):
        trace = " ".join(rng.choice(words) for _ in range(TRACE_WORDS))
        records.append(
            {"messages": [{"role": "user", "content": f"question {index}"},
                          {"role": "assistant", "content": f"<think>{trace}</think>\nThe answer is \\boxed{{{index}}}"}]}
        )  # fmt: skip
    # Row groups of 128 rows, as sharded SFT corpora are written: a Parquet reader holds one
    # row group at a time, so the streaming dataset's memory is bounded by the row group.
    pd.DataFrame(records).to_parquet(path, row_group_size=128)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(kind: str, path: str, samples: int) -> dict:
    """One measurement, in this (fresh) process."""
    import torch  # noqa: F401  (imported before the baseline for both kinds)
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset
    from verl_falcon_plugin.data.tiny_chat_tokenizer import build_chat_tokenizer

    tokenizer = build_chat_tokenizer()
    config = {"pad_mode": "no_padding", "max_length": 8192, "truncation": "right", "num_workers": 0}
    baseline = rss_mb()
    start = time.perf_counter()
    if kind == "verl":
        dataset = MultiTurnSFTDataset(path, tokenizer, config)
        built = time.perf_counter()
        for index in range(samples):
            dataset[index]
    else:
        config["streaming"] = {"difficulty": {"enabled": False}}
        dataset = StreamingSFTDataset(path, tokenizer, config)
        built = time.perf_counter()
        for _, _item in zip(range(samples), dataset):
            pass
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "kind": kind,
        "samples": samples,
        "build_s": built - start,
        "samples_per_s": samples / (done - built),
        "samples_per_s_incl_build": samples / (done - start),
        "rss_growth_mb": peak - baseline,
    }


def measure(kind: str, path: Path, samples: int) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--path", str(path), "--samples", str(samples)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300, help="rows of the small corpus (the large one is 10x)")
    parser.add_argument("--samples", type=int, default=100, help="samples tokenised per measurement")
    parser.add_argument("--worker", choices=["verl", "streaming"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path, args.samples)))
        return

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, rows in (("1x", args.rows), ("10x", 10 * args.rows)):
            path = Path(tmp) / f"corpus_{label}.parquet"
            write_corpus(path, rows)
            size_mb = path.stat().st_size / 2**20
            for kind in ("verl", "streaming"):
                result = measure(kind, path, args.samples)
                result.update(rows=rows, parquet_mb=round(size_mb, 1))
                results[f"{kind}_{label}"] = result
                print(f"{kind:9s} {label:3s} rows={rows:5d}  {result['samples_per_s']:7.1f} samples/s  "
                      f"(incl. build {result['samples_per_s_incl_build']:6.1f})  RSS +{result['rss_growth_mb']:7.1f} MB", flush=True)  # fmt: skip

    ratios = {
        "throughput streaming/verl (1x)": results["streaming_1x"]["samples_per_s"]
        / results["verl_1x"]["samples_per_s"],
        "throughput incl. build streaming/verl (10x)": results["streaming_10x"]["samples_per_s_incl_build"]
        / results["verl_10x"]["samples_per_s_incl_build"],
        "RSS growth verl/streaming (1x)": results["verl_1x"]["rss_growth_mb"]
        / results["streaming_1x"]["rss_growth_mb"],
        "RSS growth verl/streaming (10x)": results["verl_10x"]["rss_growth_mb"]
        / results["streaming_10x"]["rss_growth_mb"],
        "RSS growth 10x/1x streaming": results["streaming_10x"]["rss_growth_mb"]
        / results["streaming_1x"]["rss_growth_mb"],
        "RSS growth 10x/1x verl": results["verl_10x"]["rss_growth_mb"] / results["verl_1x"]["rss_growth_mb"],
    }
    print()
    for name, value in ratios.items():
        print(f"{name:45s} {value:6.2f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_streaming.json").write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")
    lines = ["| measurement | samples/s | samples/s incl. build | RSS growth MB |", "|---|---|---|---|"]
    lines += [f"| {k} ({v['rows']} rows, {v['parquet_mb']} MB parquet) | {v['samples_per_s']:.1f} | "
              f"{v['samples_per_s_incl_build']:.1f} | {v['rss_growth_mb']:.1f} |" for k, v in results.items()]  # fmt: skip
    lines += ["", *[f"- {k}: **{v:.2f}x**" for k, v in ratios.items()]]
    (RESULTS / "data_streaming.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
