"""verl's FSDP training engines, registered for the ``cpu`` device.

``EngineRegistry.get_engine_cls`` (``verl/workers/engine/base.py:399-430``) looks engines
up by the platform's device name; verl registers its FSDP engines for ``cuda`` and
``npu`` only (``workers/engine/fsdp/transformer_impl.py:1143,1594``). The same classes
run on CPU with FSDP2 and the gloo backend, so they are registered for ``cpu`` as is.
"""

from __future__ import annotations

import importlib

DEVICE = "cpu"
BACKENDS = ["fsdp", "fsdp2"]
ENGINES = (("language_model", "FSDPEngineWithLMHead"), ("value_model", "FSDPEngineWithValueHead"))


def register() -> list[str]:
    """Register the LM-head and value-head FSDP engines for device ``cpu``; idempotent."""
    base = importlib.import_module("verl.workers.engine.base")
    transformer_impl = importlib.import_module("verl.workers.engine.fsdp.transformer_impl")
    registry = base.EngineRegistry
    installed = []
    for model_type, class_name in ENGINES:
        engine_cls = getattr(transformer_impl, class_name)
        if registry._engines.get(model_type, {}).get(BACKENDS[0], {}).get(DEVICE) is not engine_cls:
            registry.register(model_type=model_type, backend=BACKENDS, device=DEVICE)(engine_cls)
        installed.append(f"EngineRegistry[{model_type}, fsdp/fsdp2, {DEVICE}] -> {class_name}")
    return installed
