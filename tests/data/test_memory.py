"""Memory independent of corpus size: a corpus far larger than the RSS budget streams through."""

from __future__ import annotations

import json
import threading

import psutil

from verl_falcon_plugin.data.filters import FilterReport
from verl_falcon_plugin.data.mixture import MixtureConfig, build_mixture_stream
from verl_falcon_plugin.data.sources import SourceSpec

CORPUS_MB = 96
RSS_BUDGET_MB = 32


def write_big_corpus(path, megabytes):
    trace = "we compute the sum " * 2000  # ~38 KB per row
    row_index = 0
    with open(path, "w") as handle:
        while handle.tell() < megabytes * 2**20:
            row = {"messages": [{"role": "user", "content": f"q{row_index}"},
                                {"role": "assistant", "content": f"<think>{trace}</think>\n\\boxed{{{row_index}}}"}],
                   "pass_rate": 0.5}  # fmt: skip
            handle.write(json.dumps(row) + "\n")
            row_index += 1
    return row_index


def test_streaming_a_corpus_larger_than_the_budget_keeps_rss_flat(tmp_path):
    path = tmp_path / "big.jsonl"
    rows = write_big_corpus(path, CORPUS_MB)
    process = psutil.Process()
    stream = build_mixture_stream(MixtureConfig(sources=(SourceSpec("math", (str(path),), 1.0),)), 0, 1, FilterReport())
    iterator = iter(stream)
    next(iterator)  # warm up imports and buffers before the baseline
    baseline = process.memory_info().rss
    peak = baseline
    stop = threading.Event()

    def sample_rss():
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    seen = 1
    for _ in range(rows - 1):
        next(iterator)
        seen += 1
    stop.set()
    sampler.join()
    peak = max(peak, process.memory_info().rss)
    growth_mb = (peak - baseline) / 2**20
    assert seen == rows
    assert growth_mb < RSS_BUDGET_MB < CORPUS_MB, f"RSS grew {growth_mb:.1f} MB over a {CORPUS_MB} MB corpus"


def write_big_parquet(path, megabytes):
    """Row groups of 64 rows written one by one, so writing needs no memory of the whole corpus."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    words = "we compute the sum of squares then prime factor root".split()
    writer, decoded, index = None, 0, 0
    while decoded < megabytes * 2**20:
        rows = []
        for _ in range(64):
            trace = " ".join(rng.choices(words, k=6000))
            rows.append({"messages": [{"role": "user", "content": f"q{index}"},
                                      {"role": "assistant", "content": f"<think>{trace}</think>\n\\boxed{{{index}}}"}],
                         "pass_rate": 0.5})  # fmt: skip
            decoded += len(trace)
            index += 1
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return index


def test_streaming_a_large_parquet_corpus_keeps_rss_flat(tmp_path):
    """pyarrow's threaded ``iter_batches`` reads ahead across row groups; the source must not."""
    path = tmp_path / "big.parquet"
    rows = write_big_parquet(path, 64)
    process = psutil.Process()
    stream = build_mixture_stream(MixtureConfig(sources=(SourceSpec("math", (str(path),), 1.0),)), 0, 1, FilterReport())
    iterator = iter(stream)
    next(iterator)
    baseline = peak = process.memory_info().rss
    for index in range(rows - 1):
        next(iterator)
        if index % 16 == 0:
            peak = max(peak, process.memory_info().rss)
    growth_mb = (peak - baseline) / 2**20
    assert growth_mb < 24 < 64, f"RSS grew {growth_mb:.1f} MB over a 64 MB (decoded) Parquet corpus"
