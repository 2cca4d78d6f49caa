"""What activating the plugin adds to ``import verl``: eager installers (before) vs. import hooks (now).

Each measurement is a fresh ``python -c`` that times ``import verl`` from inside (interpreter
start-up excluded), in three modes, interleaved so machine load hits all alike:

* ``baseline``: ``VERL_USE_EXTERNAL_PLUGINS=none``, verl alone;
* ``eager`` (before): verl alone, then every installer run at once as activation did before it
  was lazy (imports verl's FSDP engine, both SFT trainers, the engine workers, Liger's monkey_patch);
* ``lazy`` (now): the plugin's entry point as shipped (patches armed on import hooks), and the same
  with ``VERL_PLATFORM=cpu`` (the cpu platform registered, CPU installers armed).

Prints min/median/max seconds of each, the cost over the baseline and the ratio to it (from the minima,
the steadiest estimate on a loaded machine, and from the medians), the activation's own time (the
eager installers' time plus our modules' cumulative ``-X importtime``), and
writes ``benchmarks/results/activation_import_cost.{json,md}``.

    python benchmarks/activation_import_cost.py --repeats 5   # ~2-3 min on 2 loaded cores
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

_TIMED_IMPORT = (
    "import time; t = time.perf_counter(); import verl; t1 = time.perf_counter(); {extra}"
    "t2 = time.perf_counter(); print(t2 - t, t2 - t1)"
)
OURS = ("verl_falcon_plugin", "liger_patches")


def own_import_seconds(importtime_log: str) -> float:
    """Cumulative ``-X importtime`` of our modules that no module of ours imported (so nothing counts twice).

    ``-X importtime`` lists a module after its children, indented by depth: a line's parent is the next
    line with a smaller indent.
    """
    rows = []
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            rows.append((len(name) - len(name.lstrip()), name.strip(), int(cumulative)))
    total_us = 0
    for index, (depth, name, cumulative) in enumerate(rows):
        if not name.startswith(OURS):
            continue
        parent = next((n for d, n, _ in rows[index + 1 :] if d < depth), "")
        if not parent.startswith(OURS):
            total_us += cumulative
    return total_us / 1e6


_EAGER_INSTALLERS = (
    "from verl_falcon_plugin.models.falcon_h1 import verl_hook as a; a.install(); "
    "from liger_patches import verl_hook as b; b.install(); "
    "from verl_falcon_plugin.data import sft_trainer_hooks as c; c.install(); "
    "from verl_falcon_plugin.losses import verl_hook as d; d.install(); "
    "from verl_falcon_plugin.optim import verl_hook as e; e.install(); "
)
MODES = {
    "baseline": ({"VERL_USE_EXTERNAL_PLUGINS": "none"}, ""),
    "eager (before)": ({"VERL_USE_EXTERNAL_PLUGINS": "none"}, _EAGER_INSTALLERS),
    "lazy (now)": ({}, ""),
    "lazy, VERL_PLATFORM=cpu": ({"VERL_PLATFORM": "cpu"}, ""),
}


def measure(env: dict[str, str], extra: str) -> tuple[float, float]:
    """(seconds of ``import verl`` plus activation, seconds of the activation alone).

    The activation alone is the eager installers' own time plus our modules' import time as ``-X importtime``
    reports it (what the plugin imports at ``import verl``, third-party modules it pulls in included).
    """
    full_env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    full_env.update({"FALCON_H1R_LOG_LEVEL": "WARNING", **env})
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _TIMED_IMPORT.format(extra=extra)],
        env=full_env, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    total, installers = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
    return total, installers + own_import_seconds(out.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    activation: dict[str, list[float]] = {mode: [] for mode in MODES}
    measure(*MODES["baseline"])  # warm the file cache once
    for _ in range(args.repeats):
        for mode, (env, extra) in MODES.items():
            total, own = measure(env, extra)
            times[mode].append(total)
            activation[mode].append(own)
    base_median, base_min = statistics.median(times["baseline"]), min(times["baseline"])
    rows = []
    for mode, values in times.items():
        median = statistics.median(values)
        rows.append(
            {"mode": mode, "min_s": min(values), "median_s": median, "max_s": max(values),
             "added_median_s": median - base_median, "added_min_s": min(values) - base_min,
             "ratio_median": median / base_median, "ratio_min": min(values) / base_min,
             "activation_median_s": statistics.median(activation[mode])}
        )  # fmt: skip
    # load only ever adds time: on a shared machine the minimum is the steadiest estimate
    lines = [
        "| mode | min s | median s | max s | added s (min / median) | ratio to baseline (min / median) "
        "| activation itself, median s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['mode']} | {r['min_s']:.2f} | {r['median_s']:.2f} | {r['max_s']:.2f} "
        f"| {r['added_min_s']:+.2f} / {r['added_median_s']:+.2f} | {r['ratio_min']:.2f} / {r['ratio_median']:.2f} "
        f"| {r['activation_median_s']:.3f} |"
        for r in rows
    ]
    report = "\n".join([f"`import verl`, {args.repeats} fresh processes per mode (interleaved)", "", *lines])
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "activation_import_cost.json").write_text(json.dumps({"repeats": args.repeats, "rows": rows}, indent=2))
    (RESULTS / "activation_import_cost.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
