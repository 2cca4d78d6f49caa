"""Code-reward throughput: executions/s against 1, 2 and 4 embedded sandbox instances.

Each instance has one worker slot; items are scored by ``code_reward`` (round-robin over the
instances through the official sandbox-fusion client) from enough client threads to keep every
slot busy. Ratios are against 1 instance measured in the same run. On a 2-core machine the
scaling stops near 2x: each execution is CPU-bound (a launcher and an interpreter start).

    python benchmarks/rewards_code.py [--items 12] [--tests-per-item 4] [--repeats 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import time

from _results import write_json

from verl_falcon_plugin.rewards.code import code_reward
from verl_falcon_plugin.rewards.code.endpoints import EndpointPool
from verl_falcon_plugin.rewards.result import RewardStatus
from verl_falcon_plugin.rewards.sandbox import SandboxServer

RESPONSE = "```python\nimport sys\nn = int(sys.stdin.readline())\nprint(sum(i * i for i in range(n)))\n```"


def workload(items: int, tests_per_item: int) -> list[dict]:
    return [
        {
            "inputs": [f"{1000 * (i + t)}\n" for t in range(tests_per_item)],
            "outputs": [f"{sum(k * k for k in range(1000 * (i + t)))}\n" for t in range(tests_per_item)],
        }
        for i in range(items)
    ]


def measure(instances: int, items: list[dict]) -> dict:
    servers = [SandboxServer(workers=1) for _ in range(instances)]
    try:
        pool = EndpointPool([s.url for s in servers])
        code_reward(RESPONSE, items[0], endpoints=pool)  # warm-up: page cache, first connections
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max(2, 2 * instances)) as clients:
            results = list(
                clients.map(lambda tests: code_reward(RESPONSE, tests, endpoints=pool, concurrency=2), items)
            )
        elapsed = time.perf_counter() - start
        assert all(r.status is RewardStatus.CORRECT for r in results), [r.metadata for r in results if r.score < 1]
        executions = sum(len(r.metadata["tests"]) for r in results)
        return {
            "instances": instances,
            "executions": executions,
            "seconds": elapsed,
            "executions_per_s": executions / elapsed,
            "served": [s.requests_served for s in servers],
        }
    finally:
        for server in servers:
            server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats per configuration (best kept)")
    parser.add_argument("--tests-per-item", type=int, default=4)
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    items = workload(args.items, args.tests_per_item)
    # interleaved repeats, best kept: the machine is shared, and a neighbour's burst should not
    # land on one configuration only
    runs = [measure(n, items) for _ in range(args.repeats) for n in args.instances]
    rows = [max((r for r in runs if r["instances"] == n), key=lambda r: r["executions_per_s"]) for n in args.instances]
    base = rows[0]["executions_per_s"]
    print(f"{'instances':>9}  {'executions':>10}  {'seconds':>8}  {'exec/s':>7}  {'vs 1':>5}  served per instance")
    for row in rows:
        row["ratio_vs_first"] = row["executions_per_s"] / base
        print(
            f"{row['instances']:>9}  {row['executions']:>10}  {row['seconds']:>8.2f}  {row['executions_per_s']:>7.2f}"
            f"  {row['ratio_vs_first']:>4.2f}x  {row['served']}"
        )
    print(f"(cpu cores: {os.cpu_count()}; load average before the run is not controlled on a shared machine)")
    payload = {
        "args": vars(args),
        "rows": rows,
        "all_runs": runs,
    }
    write_json("rewards_code", payload)


if __name__ == "__main__":
    main()
