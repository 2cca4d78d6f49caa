"""Process groups on the cpu platform: plain ``gloo``.

verl builds the backend string ``f"cpu:gloo,{device}:{backend}"``
(``verl/utils/distributed.py:62,89``), which on the cpu platform is
``"cpu:gloo,cpu:gloo"``: torch rejects a device listed twice. Both initialisers are
replaced by ones that pass ``gloo``; everything else (ranks, timeout, init method) is
verl's. ``initialize_global_process_group_ray`` is also bound by name in
``verl.workers.engine_workers`` and ``verl.checkpoint_engine.base``, so those names are
rebound when those modules are imported.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from datetime import timedelta
from typing import Any, Callable

BACKEND = "gloo"
_FLAG = "_falcon_h1r_gloo"
_RAY_INIT = "initialize_global_process_group_ray"
_BY_NAME = ("verl.workers.engine_workers", "verl.checkpoint_engine.base")


def _gloo_ray_init(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second: Any = None, backend: Any = None) -> Any:
        return original(timeout_second=timeout_second, backend=backend or BACKEND)

    setattr(initialize_global_process_group_ray, _FLAG, True)
    return initialize_global_process_group_ray


def initialize_global_process_group(timeout_second: int = 36000) -> tuple[int, int, int]:
    """verl's torchrun initialiser (``utils/distributed.py:61``) with the ``gloo`` backend."""
    import torch.distributed

    torch.distributed.init_process_group(
        backend=BACKEND,
        timeout=timedelta(seconds=timeout_second),
        init_method=os.environ.get("DIST_INIT_METHOD", None),
    )
    return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


setattr(initialize_global_process_group, _FLAG, True)


def install() -> list[str]:
    """Patch ``verl.utils.distributed``'s two initialisers; idempotent."""
    distributed = importlib.import_module("verl.utils.distributed")
    if not getattr(distributed.initialize_global_process_group_ray, _FLAG, False):
        original = distributed.initialize_global_process_group_ray
        distributed.initialize_global_process_group_ray = _gloo_ray_init(original)
    distributed.initialize_global_process_group = initialize_global_process_group
    return ["verl.utils.distributed: process groups use the gloo backend on the cpu platform"]


def rebind() -> list[str]:
    """Rebind the by-name copies of ``initialize_global_process_group_ray`` already imported."""
    distributed = importlib.import_module("verl.utils.distributed")
    rebound = []
    for name in _BY_NAME:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, _RAY_INIT):
            setattr(module, _RAY_INIT, distributed.initialize_global_process_group_ray)
            rebound.append(f"{name}.{_RAY_INIT}: gloo on the cpu platform")
    return rebound
