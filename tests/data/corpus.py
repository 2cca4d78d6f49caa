"""Generated SFT corpora for the data tests and benchmarks (nothing downloaded)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CATEGORIES = ("math", "code", "science", "other")


def sample(category: str, index: int, rng: random.Random, think_words: int = 12) -> dict[str, Any]:
    reasoning = " ".join(rng.choice(["so", "we", "get", "the", "sum", "is", "prime"]) for _ in range(think_words))
    if category == "math":
        answer = f"The answer is \\boxed{{{index}}}"
    elif category == "code":
        answer = f"```python\ndef f(x):\n    return x + {index}\n```"
    else:
        answer = f"answer {index}"
    return {
        "messages": [
            {"role": "user", "content": f"{category} question {index}"},
            {"role": "assistant", "content": f"<think>{reasoning}</think>\n{answer}"},
        ],
        "pass_rate": 0.5,  # medium: weight 1, so counts are not resampled
        "uid": f"{category}-{index}",
    }


def write_source(path: Path, category: str, rows: int, seed: int = 0, think_words: int = 12) -> Path:
    rng = random.Random(f"{seed}-{category}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        for index in range(rows):
            handle.write(json.dumps(sample(category, index, rng, think_words)) + "\n")
    return path


def write_mixture(directory: Path, rows: dict[str, int], think_words: int = 12) -> dict[str, Path]:
    return {c: write_source(directory / f"{c}.jsonl", c, n, think_words=think_words) for c, n in rows.items()}


def streaming_config(files: dict[str, Path], probabilities: dict[str, float], **overrides: Any) -> dict[str, Any]:
    config = {
        "pad_mode": "no_padding",
        "max_length": 512,
        "truncation": "right",
        "num_workers": 0,
        "streaming": {
            "seed": 0,
            "sources": [{"name": c, "files": [str(files[c])], "probability": probabilities[c]} for c in probabilities],
        },
    }
    streaming_overrides = overrides.pop("streaming", {})
    config.update(overrides)
    config["streaming"].update(streaming_overrides)
    return config
