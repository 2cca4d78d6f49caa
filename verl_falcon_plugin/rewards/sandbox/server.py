"""An HTTP server speaking Sandbox-Fusion's ``POST /run_code`` protocol, backed by :class:`Sandbox`.

The request and response are Sandbox-Fusion's own (``sandbox/server/sandbox_api.py``:
``RunCodeRequest`` / ``RunCodeResponse``), so the official ``sandbox_fusion`` client and
verl's ``sandbox_fusion`` reward talk to it unchanged. ``GET /v1/ping`` answers ``"pong"``
like Sandbox-Fusion; ``GET /isolation`` reports every isolation mechanism in force.

HTTP is uvicorn (h11) + FastAPI, not hand-rolled: malformed requests (bad ``Content-Length``,
bad JSON, 100k-deep JSON, wrong field types) get a 4xx, bodies are capped (413) and must arrive
within ``body_timeout_s`` (408), idle keep-alive connections are closed after 5 s, and at most
``workers`` threads execute programs: the rest wait as coroutines in a queue of ``queue_size``
that answers 429 when full (uvicorn's own ``limit_concurrency`` answers 503 beyond that).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:
    import anyio
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError(
        f"the embedded sandbox server needs FastAPI and uvicorn ({err}): pip install 'verl-falcon-plugin[sandbox]'"
    ) from err

from verl_falcon_plugin.rewards.sandbox.request import RequestError
from verl_falcon_plugin.rewards.sandbox.runner import Sandbox

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20
#: request bodies held at once (queued and running): 256 queued 64 MiB bodies must not exhaust the server
MAX_BUFFERED_BYTES = 512 << 20
BODY_TIMEOUT_S = 30.0
DEFAULT_QUEUE_SIZE = 256


class _Admission:
    """At most ``workers`` executing, ``queue_size`` waiting, ``MAX_BUFFERED_BYTES`` of bodies held."""

    def __init__(self, workers: int, queue_size: int) -> None:
        self.queue_size = queue_size
        self.pending = 0
        self.buffered = 0
        self.running = asyncio.Semaphore(workers)
        self.requests_served = 0


def create_app(
    sandbox: Sandbox,
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_timeout_s: float = BODY_TIMEOUT_S,
) -> FastAPI:
    """The ASGI app; the admission queue is made on first use (it belongs to the server's event loop)."""
    app = FastAPI(title="falcon-h1r embedded sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.admission = None

    def admission() -> _Admission:
        if app.state.admission is None:
            app.state.admission = _Admission(sandbox.workers, queue_size)
        return app.state.admission

    @app.get("/v1/ping")
    async def ping() -> str:
        return "pong"

    @app.get("/isolation")
    async def isolation() -> dict:
        return sandbox.isolation()

    @app.post("/run_code")
    async def run_code(request: Request) -> JSONResponse:
        gate = admission()
        if gate.pending >= gate.queue_size + sandbox.workers:
            return _error(
                429,
                f"the sandbox queue is full ({gate.queue_size} waiting, {sandbox.workers} running): retry later",
                {"Retry-After": "1"},
            )
        gate.pending += 1
        held = [0]  # bytes of this request's body counted in gate.buffered
        try:
            body = await _read_json(request, max_body_bytes, body_timeout_s, gate, held)
            if isinstance(body, JSONResponse):
                return body
            async with gate.running:
                response = await anyio.to_thread.run_sync(_run, sandbox, body)
            if isinstance(response, RequestError):
                return _error(400, str(response))
            gate.requests_served += 1
            return JSONResponse(response)
        finally:
            gate.pending -= 1
            gate.buffered -= held[0]

    app.state.requests_served = lambda: 0 if app.state.admission is None else app.state.admission.requests_served
    return app


def _run(sandbox: Sandbox, body: Any) -> dict | RequestError:
    try:
        return sandbox.run_code(body)
    except RequestError as err:
        return err
    except Exception as err:  # the server's own failure: Sandbox-Fusion reports it as SandboxError
        logger.exception("sandbox failed on a request")
        return {
            "status": "SandboxError",
            "message": f"{type(err).__name__}: {err}",
            "compile_result": None,
            "run_result": None,
            "executor_pod_name": None,
            "files": {},
        }


async def _read_json(request: Request, max_bytes: int, timeout_s: float, gate: _Admission, held: list[int]) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and int(declared) > max_bytes:  # h11 has already refused a malformed one with 400
        return _error(413, f"the body is over {max_bytes} bytes")
    chunks, size = [], 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    return _error(413, f"the body is over {max_bytes} bytes")
                if gate.buffered + len(chunk) > MAX_BUFFERED_BYTES:
                    return _error(
                        503,
                        f"the server already holds {gate.buffered >> 20} MiB of request bodies: retry later",
                        {"Retry-After": "1"},
                    )
                gate.buffered += len(chunk)
                held[0] += len(chunk)
                chunks.append(chunk)
    except TimeoutError:
        return _error(408, f"the body did not arrive within {timeout_s:g} s")
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError; deep nesting a RecursionError
        return _error(400, f"the body is not JSON: {type(err).__name__}: {str(err)[:200]}")


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class SandboxServer:
    """A running embedded sandbox: ``url``, ``requests_served``, ``close()``; a context manager."""

    def __init__(
        self,
        port: int = 0,
        workers: int = 2,
        host: str = "127.0.0.1",
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        body_timeout_s: float = BODY_TIMEOUT_S,
        **sandbox_kwargs: Any,
    ) -> None:
        self.sandbox = Sandbox(workers, **sandbox_kwargs)
        self._thread: threading.Thread | None = None
        sock = None
        try:
            sock = socket.create_server((host, port), backlog=2048)
            # accepted sockets inherit it: without it, a response written as headers + body waits out the
            # client's 40 ms delayed ACK (Nagle), which made every request take 42 ms here
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.host, self.port = sock.getsockname()[:2]
            self.app = create_app(self.sandbox, queue_size=queue_size, body_timeout_s=body_timeout_s)
            config = uvicorn.Config(
                self.app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                http="h11",
                loop="asyncio",
                timeout_keep_alive=5,
                limit_concurrency=queue_size + workers + 64,  # beyond the queue: 503 before any work is done
                h11_max_incomplete_event_size=64 << 10,  # request line + headers
                timeout_graceful_shutdown=5,
            )
            self._uvicorn = uvicorn.Server(config)
            self._thread = threading.Thread(
                target=self._uvicorn.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
            )
            self._thread.start()
            self._wait_started()
        except BaseException:
            if sock is not None and self._thread is None:
                sock.close()  # once uvicorn runs, the listener is its to close
            self.close()
            raise

    def _wait_started(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox HTTP server did not start on {self.host}:{self.port}")
            time.sleep(0.01)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests_served(self) -> int:
        return self.app.state.requests_served()

    def close(self) -> None:
        if self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout=30)
            self._thread = None
        self.sandbox.close()

    def __enter__(self) -> "SandboxServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def embedded_sandbox(port: int = 0, workers: int = 2, **kwargs: Any) -> Iterator[str]:
    """Start a sandbox server in this process (``port=0``: any free port) and yield its URL."""
    with SandboxServer(port=port, workers=workers, **kwargs) as server:
        yield server.url
