"""``falcon-h1r sandbox serve``: the embedded Sandbox-Fusion-compatible code sandbox."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from verl_falcon_plugin.cli import port_number, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run the embedded code sandbox (Sandbox-Fusion /run_code protocol)",
        description="Embedded code sandbox speaking Sandbox-Fusion's POST /run_code protocol. Must run as root: "
        "programs run under dedicated unprivileged uids, in namespaces, cgroups and a tmpfs work directory. "
        "Not a boundary against kernel exploits: see the README's 'The embedded sandbox'.",
    )
    actions = parser.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve /run_code until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, local only)")
    serve.add_argument(
        "--port", type=port_number, default=8080, help="port (0: any free port; default 8080, as Sandbox-Fusion)"
    )
    serve.add_argument("--workers", type=positive_int, default=2, help="programs run at the same time (default 2)")
    serve.add_argument(
        "--memory-limit-mb",
        type=int,
        default=1024,
        help="a run's memory budget (cgroup, its files included) when a request sends none (default 1024)",
    )
    serve.add_argument(
        "--max-memory-mb", type=int, default=4096, help="the most a request's memory_limit_MB gets (default 4096)"
    )
    serve.add_argument("--max-processes", type=int, default=64, help="processes of a run (default 64)")
    serve.add_argument("--disk-mb", type=int, default=256, help="size of a run's tmpfs work directory (default 256)")
    serve.add_argument("--max-inodes", type=int, default=16384, help="files in a run's work directory (default 16384)")
    serve.add_argument(
        "--max-output-bytes",
        type=int,
        default=1 << 20,
        help="stdout+stderr cap; the program is killed beyond it (default 1 MiB)",
    )
    serve.add_argument("--queue-size", type=int, default=256, help="requests waiting for a worker; beyond: HTTP 429")
    serve.add_argument("--uid-base", type=int, default=None, help="first uid of the range the worker uids come from")
    serve.add_argument(
        "--allow-unisolated",
        action="store_true",
        help="start even where the host refuses namespaces, cgroups, tmpfs mounts or seccomp (prints what is lost)",
    )
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from verl_falcon_plugin.rewards.sandbox.request import SandboxLimits
    from verl_falcon_plugin.rewards.sandbox.server import SandboxServer

    limits = SandboxLimits(
        memory_limit_mb=args.memory_limit_mb,
        max_memory_mb=args.max_memory_mb,
        max_processes=args.max_processes,
        disk_mb=args.disk_mb,
        max_inodes=args.max_inodes,
        max_output_bytes=args.max_output_bytes,
    )
    kwargs = {} if args.uid_base is None else {"uid_base": args.uid_base}
    try:
        server = SandboxServer(
            port=args.port,
            workers=args.workers,
            host=args.host,
            limits=limits,
            queue_size=args.queue_size,
            allow_unisolated=args.allow_unisolated,
            **kwargs,
        )
    except (RuntimeError, PermissionError) as err:
        print(f"falcon-h1r sandbox serve: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # a repeated signal must not interrupt the clean-up
        signal.signal(signum, lambda *_: stop.set())
    print(f"sandbox listening on {server.url} (POST /run_code)", flush=True)
    for name, loss in server.sandbox.lost().items():
        print(f"UNISOLATED (--allow-unisolated): no {name}: {loss}", flush=True)
    print(f"isolation: {json.dumps(server.sandbox.isolation())}", flush=True)
    try:
        while not stop.wait(timeout=1.0):
            pass
    finally:
        server.close()
    print("sandbox stopped", flush=True)
    return 0
