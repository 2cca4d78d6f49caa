"""Data pipeline: the streaming SFT mixture resumes exactly and shards DP ranks disjointly (seconds, no model)."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available


def _write_source(path: Path, name: str, rows: int) -> None:
    with open(path, "w") as handle:
        for i in range(rows):
            answer = f"\\boxed{{{i}}}" if name == "math" else f"answer {i}"
            row = {"messages": [{"role": "user", "content": f"{name} {i}"},
                                {"role": "assistant", "content": f"<think>r {i}</think>\n{answer}"}],
                   "pass_rate": 0.1 if i % 3 == 0 else 0.5}  # fmt: skip
            handle.write(json.dumps(row) + "\n")


@register_check("data.stream_resume_and_sharding", area="data")
def stream_resume_and_sharding() -> CheckResult:
    """HF ``datasets`` state_dict resume of the weighted mixture is exact here, and DP ranks split it."""
    if not is_available("datasets"):
        return CheckResult.skipped("`datasets` is not installed (pip install 'verl-falcon-plugin[data]')")
    from verl_falcon_plugin.data.filters import FilterReport
    from verl_falcon_plugin.data.mixture import MixtureConfig, build_mixture_stream
    from verl_falcon_plugin.data.sources import SourceSpec

    with tempfile.TemporaryDirectory() as tmp:
        specs = []
        for name, probability in (("math", 0.6), ("other", 0.4)):
            _write_source(Path(tmp) / f"{name}.jsonl", name, 13)
            specs.append(SourceSpec(name, (str(Path(tmp) / f"{name}.jsonl"),), probability))
        config = MixtureConfig(sources=tuple(specs), seed=7)

        def key(record: dict) -> tuple:
            return record["origin"], record["cycle"], record["copy"]

        def take(rank: int, world: int, n: int) -> list[tuple]:
            return [
                key(r) for r in itertools.islice(iter(build_mixture_stream(config, rank, world, FilterReport())), n)
            ]

        full = take(1, 2, 40)
        stream = build_mixture_stream(config, 1, 2, FilterReport())
        iterator = iter(stream)
        head = [key(next(iterator)) for _ in range(17)]
        resumed = build_mixture_stream(config, 1, 2, FilterReport())
        resumed.load_state_dict(stream.state_dict())
        tail = [key(r) for r in itertools.islice(iter(resumed), 23)]
        rank0, single = take(0, 2, 40), take(0, 1, 80)
    if head + tail != full:
        return CheckResult.failed("resuming the mixture from its state_dict did not reproduce the stream")
    if rank0 != single[0::2] or full != single[1::2]:
        return CheckResult.failed("DP ranks 0/1 do not split the global stream into its even/odd samples")
    return CheckResult.passed("mixture resume exact over 40 samples; 2 DP ranks split the global stream exactly")
