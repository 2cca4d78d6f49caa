"""The weighted SFT mixture as one HF ``datasets`` stream, sharded per data-parallel rank.

Per source: raw rows (cycled forever) -> parse + validate -> quality filters ->
difficulty resampling. Then ``interleave_datasets(probabilities=...)`` draws the source
of each next sample, and ``split_dataset_by_node(strategy="examples")`` gives DP rank
``r`` of ``R`` the samples ``r, r+R, r+2R, ...`` of that one global stream. Hence:

* the global stream does not depend on the number of ranks; DP ranks are disjoint
  and together cover it, and the global batch has the mixture's composition;
* every rank of one Ulysses/SP group passes the same DP rank, so gets identical samples;
* the probabilities are proportions *of samples after filtering and weighting*, which is
  how the paper states its mixture (math 55.9 / code 27.0 / science 10.0 / other 7.1).

Every rank reads and filters every row (only its own samples are tokenised): filtering
is cheap next to tokenising 36K-token traces, except the C++ syntax check, which is why
pre-filtering large code sources offline with :func:`filters.quality_problem` pays off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from verl_falcon_plugin.data.difficulty import DifficultyConfig, difficulty_weight, resampled_copies
from verl_falcon_plugin.data.filters import FilterConfig, FilterReport, quality_problem
from verl_falcon_plugin.data.sources import SourceSpec, malformed, raw_rows
from verl_falcon_plugin.requires import require

#: The paper's final SFT mixture, by samples (Sec. 2).
PAPER_MIXTURE: dict[str, float] = {"math": 0.559, "code": 0.270, "science": 0.100, "other": 0.071}


@dataclass(frozen=True)
class MixtureConfig:
    sources: tuple[SourceSpec, ...]
    seed: int = 0
    filters: FilterConfig = field(default_factory=FilterConfig)
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)

    def probabilities(self) -> list[float]:
        total = sum(s.probability for s in self.sources)
        return [s.probability / total for s in self.sources]


class SourcePipeline:
    """Parse, filter and resample one source's raw rows (a batched map of batch size 1)."""

    def __init__(self, spec: SourceSpec, config: MixtureConfig, report: FilterReport):
        self.spec = spec
        self.config = config
        self.report = report

    def __deepcopy__(self, memo: dict[int, Any]) -> "SourcePipeline":
        # HF deep-copies pipelines when interleaving and iterating; the copies must
        # keep counting into the one report the dataset exposes.
        return self

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"source": [], "origin": [], "cycle": [], "row": [], "copy": []}
        for origin, cycle, row in zip(batch["origin"], batch["cycle"], batch["row"]):
            sample = parse_sample(row, origin)
            reason, notes = quality_problem(sample, self.spec.category, self.config.filters)
            for note in notes:
                self.report.note(self.spec.name, note)
            if reason is None:
                weight = difficulty_weight_at(sample, origin, self.config.difficulty)
                copies = resampled_copies(weight, f"{origin}#{cycle}", self.config.seed)
                reason = "easy_dropped" if weight == 0 else None
                if reason is None and copies == 0:
                    self.report.note(self.spec.name, "downweighted_skip")
            else:
                copies = 0
            # Rows are counted on the first pass over the source only, so the report
            # describes the corpus rather than how long the run has been cycling it.
            if cycle == 0:
                self.report.record(self.spec.name, reason)
            for copy in range(copies):
                out["source"].append(self.spec.name)
                out["origin"].append(origin)
                out["cycle"].append(cycle)
                out["row"].append(row)
                out["copy"].append(copy)
        return out


def parse_sample(row: str, origin: str) -> dict[str, Any]:
    """The row as a validated SFT sample (``messages`` of role/content dicts)."""
    sample = json.loads(row)
    messages = sample.get("messages")
    if not isinstance(messages, list) or not messages:
        raise malformed(origin, "field 'messages' must be a non-empty list of {role, content} objects")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise malformed(origin, f"messages[{index}] must be an object with a string 'role'")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise malformed(origin, f"messages[{index}].content must be a string (got {type(content).__name__})")
    if not any(m["role"] == "assistant" for m in messages):
        raise malformed(origin, "no assistant turn in 'messages'")
    return sample


def difficulty_weight_at(sample: dict[str, Any], origin: str, config: DifficultyConfig) -> float:
    try:
        return difficulty_weight(sample, config)
    except ValueError as err:
        raise malformed(origin, str(err)) from err


def source_stream(spec: SourceSpec, config: MixtureConfig, report: FilterReport) -> Any:
    datasets = require("datasets", "the streaming SFT mixture")
    # A tuple, not a list: HF would shard list-valued gen_kwargs, and the split by
    # node must happen on the interleaved stream, example by example.
    raw = datasets.IterableDataset.from_generator(
        raw_rows, gen_kwargs={"files": tuple(spec.files), "source": spec.name}
    )
    return raw.map(SourcePipeline(spec, config, report), batched=True, batch_size=1)


def build_mixture_stream(config: MixtureConfig, dp_rank: int, dp_size: int, report: FilterReport) -> Any:
    """This DP rank's share of the mixture: an endless HF ``IterableDataset``."""
    if not 0 <= dp_rank < dp_size:
        raise ValueError(f"dp_rank must be in [0, {dp_size}), got {dp_rank}")
    datasets = require("datasets", "the streaming SFT mixture")
    distributed = require("datasets.distributed", "the streaming SFT mixture")
    streams = [source_stream(spec, config, report) for spec in config.sources]
    mixed = (
        streams[0]
        if len(streams) == 1
        else datasets.interleave_datasets(streams, probabilities=config.probabilities(), seed=config.seed)
    )
    if dp_size == 1:
        return mixed
    return distributed.split_dataset_by_node(mixed, rank=dp_rank, world_size=dp_size, strategy="examples")
