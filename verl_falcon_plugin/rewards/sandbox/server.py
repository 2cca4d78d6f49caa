"""An HTTP server speaking Sandbox-Fusion's ``POST /run_code`` protocol, backed by :class:`Sandbox`.

The request and response are Sandbox-Fusion's own (``sandbox/server/sandbox_api.py``:
``RunCodeRequest`` / ``RunCodeResponse``), so the official ``sandbox_fusion`` client and
verl's ``sandbox_fusion`` reward talk to it unchanged. ``GET /v1/ping`` answers ``"pong"``
like Sandbox-Fusion; ``GET /isolation`` reports what isolation this host granted.

Connections are handled by threads; executions are bounded by the sandbox's worker slots.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from verl_falcon_plugin.rewards.sandbox.runner import RequestError, Sandbox

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 << 20


class _Handler(BaseHTTPRequestHandler):
    server: "_HTTPServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: HTTPStatus, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") == "/v1/ping":
            self._reply(HTTPStatus.OK, "pong")
        elif self.path.rstrip("/") == "/isolation":
            self._reply(HTTPStatus.OK, self.server.sandbox.isolation())
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"detail": f"no route GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/run_code":
            self._reply(HTTPStatus.NOT_FOUND, {"detail": f"no route POST {self.path}; use /run_code"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"detail": f"body over {MAX_BODY_BYTES} bytes"})
            return
        try:
            request = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            self._reply(HTTPStatus.BAD_REQUEST, {"detail": f"the body is not JSON: {err}"})
            return
        try:
            response = self.server.sandbox.run_code(request)
        except RequestError as err:
            self._reply(HTTPStatus.BAD_REQUEST, {"detail": str(err)})
            return
        except Exception as err:  # the server's own failure: Sandbox-Fusion reports it as SandboxError
            logger.exception("sandbox failed on a request")
            response = {
                "status": "SandboxError",
                "message": f"{type(err).__name__}: {err}",
                "compile_result": None,
                "run_result": None,
                "executor_pod_name": None,
                "files": {},
            }
        with self.server.counter_lock:
            self.server.requests_served += 1
        self._reply(HTTPStatus.OK, response)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default 5 drops bursts of concurrent clients into SYN retries

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        super().__init__(address, _Handler)
        self.sandbox = sandbox
        self.requests_served = 0
        self.counter_lock = threading.Lock()


class SandboxServer:
    """A running embedded sandbox: ``url``, ``requests_served``, ``close()``; a context manager."""

    def __init__(self, port: int = 0, workers: int = 2, host: str = "127.0.0.1", **sandbox_kwargs: Any) -> None:
        self.sandbox = Sandbox(workers, **sandbox_kwargs)
        try:
            self._http = _HTTPServer((host, port), self.sandbox)
        except BaseException:
            self.sandbox.close()
            raise
        self.host, self.port = self._http.server_address[:2]
        self._thread = threading.Thread(target=self._http.serve_forever, name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests_served(self) -> int:
        return self._http.requests_served

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
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
