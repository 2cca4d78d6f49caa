"""The server's end of the pre-forked launcher (``_launcher.serve``).

Starting a Python launcher per command cost ~80 ms of interpreter start and imports (more with pyseccomp,
whose import runs ``ldconfig`` twice); the zygote pays that once, then each command is one ``fork``.
It runs as root in its own session, with an empty environment, and exits when its control socket closes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

LAUNCHER = str(Path(__file__).with_name("_launcher.py"))


class Zygote:
    def __init__(self, seccomp_module_dir: str | None, seccomp_libraries: dict[str, str | None]) -> None:
        self._settings = {"seccomp_module_dir": seccomp_module_dir, "seccomp_libraries": seccomp_libraries}
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", LAUNCHER, str(theirs.fileno()), json.dumps(self._settings)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,
                env={},
                cwd="/",
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours

    def spawn(self, config: dict, fds: list[int]) -> int:
        """Fork a launcher for ``config`` with (stdin, stdout, stderr, status) descriptors; returns its pidfd,
        which the caller closes."""
        message = json.dumps(config).encode()
        with self._lock:
            for attempt in (1, 2):
                try:
                    socket.send_fds(self._sock, [message], fds)
                    answer, pidfds, _, _ = socket.recv_fds(self._sock, 64, 1)
                except OSError:
                    answer, pidfds = b"", []
                if answer and pidfds:
                    return pidfds[0]
                for fd in pidfds:
                    os.close(fd)
                if attempt == 1:  # the zygote died (killed from outside): start a fresh one, once
                    self._stop()
                    self._start()
        raise RuntimeError("the sandbox's pre-forked launcher died twice in a row; see the server's stderr")

    def _stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # EOF: the zygote exits
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def close(self) -> None:
        with self._lock:
            self._stop()
