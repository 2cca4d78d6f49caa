"""Mixture proportions (chi-square), weighting, filtering in the stream, DP/SP sharding, trimming, errors."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest
from scipy.stats import chisquare

from tests.data.corpus import streaming_config, write_mixture, write_source
from verl_falcon_plugin.data.filters import FilterReport
from verl_falcon_plugin.data.jsonl_io import MalformedRowError
from verl_falcon_plugin.data.mixture import PAPER_MIXTURE, MixtureConfig, build_mixture_stream
from verl_falcon_plugin.data.sources import SourceSpec

#: significance of the goodness-of-fit tests; with a fixed seed the outcome is deterministic
ALPHA = 0.001


def take(stream, n):
    return list(itertools.islice(iter(stream), n))


def paper_mixture(tmp_path, rows=200):
    files = write_mixture(tmp_path, {c: rows for c in PAPER_MIXTURE})
    sources = tuple(SourceSpec(c, (str(files[c]),), p) for c, p in PAPER_MIXTURE.items())
    return MixtureConfig(sources=sources, seed=1)


def test_realised_composition_matches_the_paper_mixture(tmp_path):
    n = 4000
    records = take(build_mixture_stream(paper_mixture(tmp_path), 0, 1, FilterReport()), n)
    counts = Counter(r["source"] for r in records)
    observed = [counts[c] for c in PAPER_MIXTURE]
    expected = [PAPER_MIXTURE[c] * n for c in PAPER_MIXTURE]
    assert chisquare(observed, expected).pvalue > ALPHA, counts
    # the test has power: the same counts reject a uniform mixture outright
    assert chisquare(observed, [n / 4] * 4).pvalue < 1e-12


def test_each_global_batch_follows_the_mixture_across_dp_ranks(tmp_path):
    config = paper_mixture(tmp_path)
    ranks = [take(build_mixture_stream(config, r, 4, FilterReport()), 1000) for r in range(4)]
    counts = Counter(rec["source"] for rank in ranks for rec in rank)
    expected = [PAPER_MIXTURE[c] * 4000 for c in PAPER_MIXTURE]
    assert chisquare([counts[c] for c in PAPER_MIXTURE], expected).pvalue > ALPHA


def test_dp_ranks_are_disjoint_and_cover_the_global_stream_and_sp_ranks_are_identical(tmp_path):
    config = paper_mixture(tmp_path, rows=50)
    single = [(r["origin"], r["copy"]) for r in take(build_mixture_stream(config, 0, 1, FilterReport()), 300)]
    world = 3
    per_rank = [
        [(r["origin"], r["copy"]) for r in take(build_mixture_stream(config, k, world, FilterReport()), 100)]
        for k in range(world)
    ]
    for k in range(world):
        assert per_rank[k] == single[k::world]  # covering, in order
    assert sorted(itertools.chain(*per_rank)) == sorted(single)  # disjoint and complete
    # two SP ranks of DP group 1 build the stream with the same DP rank: identical samples
    sp_twin = [(r["origin"], r["copy"]) for r in take(build_mixture_stream(config, 1, world, FilterReport()), 100)]
    assert sp_twin == per_rank[1]


def test_difficulty_weights_are_realised_in_the_stream(tmp_path):
    path = tmp_path / "math.jsonl"
    with open(path, "w") as handle:
        for i in range(2000):
            rate = 0.0 if i % 2 else 0.5  # odd rows hard (x1.75), even rows medium (x1)
            row = {
                "messages": [
                    {"role": "user", "content": f"q{i}"},
                    {"role": "assistant", "content": f"<think>r</think>\n\\boxed{{{i}}}"},
                ],
                "pass_rate": rate,
            }
            handle.write(json.dumps(row) + "\n")
    config = MixtureConfig(sources=(SourceSpec("math", (str(path),), 1.0),), seed=0)
    records = []
    for record in build_mixture_stream(config, 0, 1, FilterReport()):
        if record["origin"].endswith(":1") and records:
            break  # the source started its second pass
        records.append(record)
    hard = sum(int(r["origin"].rsplit(":", 1)[1]) % 2 == 0 for r in records)  # line = index + 1
    medium = len(records) - hard
    assert medium == 1000
    assert hard / 1000 == pytest.approx(1.75, abs=0.06)  # 4 binomial standard errors


def test_filtered_rows_never_reach_the_stream_and_are_counted(tmp_path):
    path = tmp_path / "math.jsonl"
    good = {
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "<think>r</think>\n\\boxed{1}"},
        ],
        "pass_rate": 0.5,
    }
    unboxed = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>\n1"}],
        "pass_rate": 0.5,
    }
    empty = {
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think></think>\n\\boxed{1}"}],
        "pass_rate": 0.5,
    }
    with open(path, "w") as handle:
        for row in [good, unboxed, good, empty, good]:
            handle.write(json.dumps(row) + "\n")
    report = FilterReport()
    config = MixtureConfig(sources=(SourceSpec("math", (str(path),), 1.0),))
    records = take(build_mixture_stream(config, 0, 1, report), 6)
    assert {r["origin"].rsplit(":", 1)[1] for r in records} == {"1", "3", "5"}
    assert report.dropped_by_reason() == Counter({"math_no_boxed": 1, "empty_reasoning": 1})
    assert report.seen["math"] == 5 and report.kept["math"] == 3


def test_malformed_rows_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n{not json\n'
    )
    config = MixtureConfig(sources=(SourceSpec("other", (str(path),), 1.0),))
    with pytest.raises(MalformedRowError, match=rf"{path}:2: not valid JSON"):
        take(build_mixture_stream(config, 0, 1, FilterReport()), 3)
    path.write_text('{"messages": "hello"}\n')
    with pytest.raises(MalformedRowError, match=rf"{path}:1: field 'messages'"):
        take(build_mixture_stream(config, 0, 1, FilterReport()), 1)


def test_dataset_items_trimming_and_parquet_sources(tmp_path, chat_tokenizer):
    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"math": 30}, think_words=80)
    parquet = tmp_path / "code.parquet"
    import pandas as pd

    rows = [json.loads(line) for line in open(write_source(tmp_path / "code.jsonl", "code", 30))]
    pd.DataFrame(rows).to_parquet(parquet)
    files["code"] = parquet
    config = streaming_config(files, {"math": 0.5, "code": 0.5}, max_length=48, streaming={"samples_per_epoch": 40})
    dataset = StreamingSFTDataset(None, chat_tokenizer, config)
    items = list(dataset)
    assert len(items) == len(dataset) == 40
    assert set(items[0]) == {"input_ids", "position_ids", "loss_mask"}
    assert all(len(i["input_ids"]) <= 48 for i in items)
    trimmed = sum(c for (s, w), c in dataset.report.notes.items() if w == "trimmed")
    # the 80-word math traces exceed 48 tokens; the short code ones do not
    math_items = sum(1 for i in items if len(i["input_ids"]) == 48)
    assert trimmed == math_items > 0
    assert all(i["loss_mask"].sum() > 0 for i in items)


@pytest.mark.parametrize("pad_mode", ["right", "no_padding"])
@pytest.mark.parametrize("max_length", [96, 46])  # 96 pads every row, 46 right-trims some (rows are 44-50)
def test_items_equal_verls_multiturn_sft_dataset_on_the_same_rows(tmp_path, chat_tokenizer, pad_mode, max_length):
    """Reference: verl 0.9.1's own MultiTurnSFTDataset (what verl's SFT trainer reads by default) on the same rows,
    same template, padding and right truncation: every tensor equal, dtype included."""
    import pandas as pd
    import torch
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"science": 10})
    rows = [json.loads(line) for line in open(files["science"])]
    parquet = tmp_path / "science.parquet"
    pd.DataFrame([{"messages": row["messages"]} for row in rows]).to_parquet(parquet)
    settings = {"pad_mode": pad_mode, "max_length": max_length, "truncation": "right"}
    reference = MultiTurnSFTDataset(str(parquet), chat_tokenizer, settings)
    config = streaming_config(files, {"science": 1.0}, **settings, streaming={"samples_per_epoch": 10})
    ours = list(StreamingSFTDataset(None, chat_tokenizer, config))  # one source: the file's order
    assert len(ours) == len(reference) == 10
    for index, item in enumerate(ours):
        expected = reference[index]
        assert set(item) == set(expected)
        for key in expected:
            assert item[key].dtype == expected[key].dtype and torch.equal(item[key], expected[key]), (index, key)
    # the cases happen: with 96 every row is shorter (padded when pad_mode=right); with 46 some are trimmed, some not
    untrimmed = MultiTurnSFTDataset(str(parquet), chat_tokenizer, {"pad_mode": "no_padding", "max_length": 4096})
    lengths = [untrimmed[i]["input_ids"].numel() for i in range(10)]
    assert max(lengths) > max_length >= min(lengths) if max_length == 46 else max(lengths) < max_length


def test_validation_set_streams_val_files_without_the_mixture(tmp_path, chat_tokenizer):
    from verl_falcon_plugin.data.streaming_sft import StreamingSFTDataset

    files = write_mixture(tmp_path, {"math": 10, "science": 7})
    config = streaming_config(files, {"math": 1.0}, val_files=[str(files["science"])])
    val = StreamingSFTDataset([str(files["science"])], chat_tokenizer, config)
    assert val.is_validation and [s.name for s in val.mixture.sources] == ["train"]
    texts = [chat_tokenizer.decode(item["input_ids"]) for item in val]
    assert len(texts) == 7 and all("science question" in t for t in texts)
    train = StreamingSFTDataset(None, chat_tokenizer, config)
    assert not train.is_validation and [s.name for s in train.mixture.sources] == ["math"]
