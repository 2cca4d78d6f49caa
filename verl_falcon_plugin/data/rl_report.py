"""The difficulty histogram of a filtered RL set (the paper's mirrored-J), as a PNG."""

from __future__ import annotations

import os
from collections import Counter

from verl_falcon_plugin.data.jsonl_io import atomic_output
from verl_falcon_plugin.requires import require


def solve_histogram(solved_counts: list[int], rollouts_per_problem: int) -> list[int]:
    counts = Counter(solved_counts)
    return [counts[k] for k in range(rollouts_per_problem + 1)]


def plot_difficulty(histogram: list[int], path: str | os.PathLike, title: str) -> None:
    """Bar chart of kept problems by rollouts solved, written atomically."""
    matplotlib = require("matplotlib", "the difficulty histogram")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", "the difficulty histogram")
    figure, axis = pyplot.subplots(figsize=(6, 3.5))
    n = len(histogram) - 1
    axis.bar([f"{k}/{n}" for k in range(n + 1)], histogram, color="#3b6ea8")
    axis.set_xlabel("rollouts solved by the SFT model")
    axis.set_ylabel("problems kept")
    axis.set_title(title)
    figure.tight_layout()
    with atomic_output(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    pyplot.close(figure)
