"""A ``cpu`` platform for verl 0.9.1, selected with verl's own ``VERL_PLATFORM=cpu``.

verl resolves its platform once per process (``verl.plugin.platform.get_platform``)
from ``PlatformRegistry``; ``cuda``, ``npu`` and ``rocm`` are built in. This class lets
verl's real trainers run on a machine without an accelerator, for smoke runs and CI.
Three answers are not the obvious ones, each because of how verl uses them:

* ``ray_resource_name()`` is ``"GPU"``: verl's resource check
  (``single_controller/ray/base.py:228-242``) counts only ``GPU``/``NPU`` resources, so the
  run declares fake Ray GPUs (``ray_kwargs.ray_init.num_gpus``), one per training rank.
* ``current_device()`` is ``"cpu"``, not an index: verl passes it to ``.to()`` and
  ``torch.device()`` (``workers/engine/fsdp/transformer_impl.py:730,1552``).
* ``device_module`` is :data:`cpu_device_module`, ``torch.cpu`` plus the CUDA-style
  memory, RNG and cache calls verl makes on its device module, as no-ops or host values.

It depends on nothing but torch and verl's ``PlatformBase``, so it can move upstream as is.
"""

from __future__ import annotations

import contextlib
import os
import types
from typing import Any, Optional

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

PLATFORM_NAME = "cpu"


def _no_op(*_args: Any, **_kwargs: Any) -> None:
    return None


def _zero(*_args: Any, **_kwargs: Any) -> int:
    return 0


def _host_memory(*_args: Any, **_kwargs: Any) -> tuple[int, int]:
    """(free, total) bytes of host memory, as ``torch.cuda.mem_get_info`` reports device memory."""
    pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    free_pages = os.sysconf("SC_AVPHYS_PAGES")
    return free_pages * page_size, pages * page_size


def _build_device_module() -> types.ModuleType:
    module = types.ModuleType("verl_falcon_plugin.cpu.device_module", "torch.cpu plus CUDA-style no-ops for verl")
    for name in dir(torch.cpu):
        if not name.startswith("_"):
            setattr(module, name, getattr(torch.cpu, name))
    module.is_available = lambda: True
    module.device_count = lambda: 1
    module.current_device = lambda: PLATFORM_NAME
    module.set_device = _no_op
    module.get_device_name = lambda *_a, **_k: PLATFORM_NAME
    module.get_device_capability = lambda *_a, **_k: (None, None)
    module.empty_cache = _no_op
    module.ipc_collect = _no_op
    module.set_per_process_memory_fraction = _no_op
    module.reset_peak_memory_stats = _no_op
    module.memory_allocated = _zero
    module.max_memory_allocated = _zero
    module.memory_reserved = _zero
    module.max_memory_reserved = _zero
    module.mem_get_info = _host_memory
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    module.get_rng_state = lambda *_a, **_k: torch.get_rng_state()
    module.set_rng_state = lambda state, *_a, **_k: torch.set_rng_state(state)
    return module


#: what ``get_torch_device()`` returns on the cpu platform
cpu_device_module = _build_device_module()


class PlatformCPU(PlatformBase):
    """verl's platform interface on the host CPU (gloo collectives, no device memory)."""

    @property
    def device_name(self) -> str:
        return PLATFORM_NAME

    @property
    def vendor_name(self) -> str:
        return PLATFORM_NAME

    @property
    def device_module(self) -> types.ModuleType:
        return cpu_device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # never auto-detected: only an explicit VERL_PLATFORM=cpu selects it
        return False

    def current_device(self) -> str:  # verl passes it to .to(): an index would mean cuda:N
        return PLATFORM_NAME

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray sets CUDA_VISIBLE_DEVICES for the fake GPUs; nothing reads it on CPU
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register() -> list[str]:
    """Register :class:`PlatformCPU` as ``cpu`` in verl's ``PlatformRegistry``; idempotent."""
    if PlatformRegistry.get(PLATFORM_NAME) is not PlatformCPU:
        PlatformRegistry.register(platform=PLATFORM_NAME)(PlatformCPU)
    return [f"verl platform {PLATFORM_NAME!r} (VERL_PLATFORM={PLATFORM_NAME})"]
