"""pass@1 per benchmark from `falcon-h1r rl-data rollouts` outputs: the mean reward over all samples.

python recipes/eval/pass_at_1.py results/aime25.jsonl results/gpqa_diamond.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pass_at_1(path: Path) -> tuple[float, int, int]:
    """(pass@1 in %, problems, samples); a sample counts as solved when its reward is 1."""
    per_problem = []
    samples = 0
    with path.open() as rows:
        for line in rows:
            rollouts = json.loads(line)["rollouts"]
            per_problem.append(sum(r["reward"] >= 1.0 for r in rollouts) / len(rollouts))
            samples += len(rollouts)
    if not per_problem:
        raise SystemExit(f"{path}: no problems")
    return 100 * sum(per_problem) / len(per_problem), len(per_problem), samples


if __name__ == "__main__":
    print(f"{'benchmark':24s} {'pass@1':>7s} {'problems':>9s} {'samples':>8s}")
    for arg in sys.argv[1:]:
        score, problems, samples = pass_at_1(Path(arg))
        print(f"{Path(arg).stem:24s} {score:7.1f} {problems:9d} {samples:8d}")
