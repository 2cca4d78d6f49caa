"""One torch thread for this area's tests: on the shared 2-core machine, OpenMP spin-waits of 2 threads
under load made the tiny-model forwards 10x slower than one thread."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
