"""Helpers for the code-reward and sandbox tests (a module, not a conftest: tests/rewards is shared)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

# planted before the servers start: a sandboxed program must never see it
SECRET_NAME, SECRET_VALUE = "FALCON_H1R_TEST_SECRET", "do-not-leak-7d1c"


def require_root() -> None:
    """The embedded sandbox needs root (and a host granting namespaces, cgroups, tmpfs and seccomp, which the
    server itself refuses to start without). CI runs as root: there a missing prerequisite FAILS the test."""
    if os.geteuid() == 0:
        return
    message = "the embedded sandbox tests need root (they start servers that run code under dedicated uids)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run them", pytrace=False)
    pytest.skip(message)


@contextmanager
def sandbox_servers(count: int = 2, workers: int = 2, **kwargs) -> Iterator[list]:
    """``count`` embedded sandbox servers with ``workers`` slots each, started in this process."""
    from verl_falcon_plugin.rewards.sandbox import SandboxServer

    require_root()
    os.environ[SECRET_NAME] = SECRET_VALUE
    servers = []
    try:
        for _ in range(count):
            servers.append(SandboxServer(workers=workers, **kwargs))
        yield servers
    finally:
        for server in servers:
            server.close()
        os.environ.pop(SECRET_NAME, None)


def slot_uids(servers) -> set[int]:
    return {uid for s in servers for uid in s.sandbox.isolation()["slot_uids"]}


def dead_endpoint() -> str:
    """A URL on which nothing listens (a port bound then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def surviving_processes(uids: set[int]) -> list[psutil.Process]:
    """Live (non-zombie) processes running under any of ``uids``."""
    alive = []
    for proc in psutil.process_iter(["uids", "status"]):
        info = proc.info
        if info["uids"] is not None and info["uids"].real in uids and info["status"] != psutil.STATUS_ZOMBIE:
            alive.append(proc)
    return alive


def verl_sandbox_fusion_utils():
    """verl's ``reward_score/sandbox_fusion/utils.py``, loaded from its file: it needs only ``requests``,
    while ``import verl`` would pull torch and every engine (20 s on this machine)."""
    import importlib.util
    import pathlib

    spec = importlib.util.find_spec("verl")
    if spec is None or spec.origin is None:
        import pytest

        pytest.skip("verl is not installed (the [verl] extra)")
    path = pathlib.Path(spec.origin).parent / "utils" / "reward_score" / "sandbox_fusion" / "utils.py"
    module_spec = importlib.util.spec_from_file_location("verl_sandbox_fusion_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
