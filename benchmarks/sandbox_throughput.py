"""Embedded-sandbox throughput: 64 concurrent short programs, every isolation mechanism on, against a floor.

The floor is the same programs run with no isolation and no HTTP at all (``subprocess.run`` of the same
interpreter from ``workers`` threads): what any sandbox on this machine must pay at least. Sandbox-Fusion's
Docker-free server is not installable here (only its client is on PyPI), so the ratio reported is ours vs
that floor, measured in the same run (interleaved repeats, min/median/max); issue 15 quotes Sandbox-Fusion at
1.3 s for 64 programs on an idle machine of this class. Also printed: where one run's time goes (median of
the launcher's CLOCK_MONOTONIC instants).

    python benchmarks/sandbox_throughput.py [--programs 64] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import statistics
import subprocess
import time

import sandbox_fusion
from _results import write_json
from sandbox_fusion import RunCodeRequest

from verl_falcon_plugin.rewards.sandbox import SandboxServer
from verl_falcon_plugin.rewards.sandbox import execute as execute_module
from verl_falcon_plugin.rewards.sandbox.languages import system_python

PHASES = ["requested", "launcher", "unshared", "init", "mounted", "exited", "collected"]
PHASE_NAMES = {
    "requested->launcher": "fork from the zygote, setsid",
    "launcher->unshared": "join cgroups, unshare namespaces",
    "unshared->init": "fork the namespace's init",
    "init->mounted": "remount read-only, mount /proc",
    "mounted->exited": "the program (fork, rlimits, uid, seccomp, exec, run)",
    "exited->collected": "teardown, report, output collected",
}


def sandbox_time(server: SandboxServer, programs: int) -> float:
    def one(i: int):
        request = RunCodeRequest(code=f"print({i} * {i})", language="python")
        return sandbox_fusion.run_code(request, endpoint=server.url, max_attempts=1, client_timeout=300)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(programs) as pool:
        responses = list(pool.map(one, range(programs)))
    elapsed = time.perf_counter() - start
    assert [r.run_result.stdout for r in responses] == [f"{i * i}\n" for i in range(programs)]
    return elapsed


def floor_time(programs: int, workers: int) -> float:
    python = system_python()

    def one(i: int) -> str:
        return subprocess.run(
            [python, "-E", "-s", "-B", "-c", f"print({i} * {i})"], capture_output=True, text=True, check=True
        ).stdout

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        outputs = list(pool.map(one, range(programs)))
    elapsed = time.perf_counter() - start
    assert outputs == [f"{i * i}\n" for i in range(programs)]
    return elapsed


def breakdown() -> dict[str, float]:
    """Median milliseconds of each phase over the commands recorded so far."""
    phases = [p for p in execute_module.RECENT_PHASES if all(k in p for k in PHASES)]
    return {f"{a}->{b}": 1000 * statistics.median(p[b] - p[a] for p in phases) for a, b in zip(PHASES, PHASES[1:])}


def summary(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ours, floor = [], []
    with SandboxServer(workers=args.workers) as server:
        isolation = server.sandbox.isolation()
        sandbox_time(server, args.workers)  # warm-up
        floor_time(args.workers, args.workers)
        execute_module.RECENT_PHASES.clear()
        for _ in range(args.repeats):  # interleaved: a neighbour's burst should not land on one side only
            ours.append(sandbox_time(server, args.programs))
            floor.append(floor_time(args.programs, args.workers))
        phases = breakdown()
    ratios = [o / f for o, f in zip(ours, floor)]
    print(
        f"{args.programs} concurrent programs, {args.workers} workers, {args.repeats} repeats "
        f"(load average before: {os.getloadavg()[0]:.1f}, cpu cores: {os.cpu_count()})"
    )
    for name, values in (("embedded sandbox (s)", ours), ("floor: bare subprocess (s)", floor), ("ratio", ratios)):
        s = summary(values)
        print(f"  {name:28s} min {s['min']:.2f}  median {s['median']:.2f}  max {s['max']:.2f}")
    print("  where one run's time goes (median ms):")
    for key, ms in phases.items():
        print(f"    {ms:7.2f}  {PHASE_NAMES[key]}")
    mechanisms = {k: isolation[k] for k in ("namespaces", "cgroup", "workdir_tmpfs", "seccomp", "unisolated")}
    print(f"  mechanisms in force: {json.dumps(mechanisms)}")
    payload = {
        "args": vars(args),
        "sandbox_s": summary(ours),
        "floor_s": summary(floor),
        "ratio": summary(ratios),
        "phases_ms": phases,
        "mechanisms": mechanisms,
    }
    write_json("sandbox_throughput", payload)


if __name__ == "__main__":
    main()
