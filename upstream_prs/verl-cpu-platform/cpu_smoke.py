"""verl on VERL_PLATFORM=cpu: the platform, the FSDP engine lookup and a process group; prints JSON.

Run with ``PYTHONPATH`` at a copy of verl (patched or not), ``VERL_PLATFORM=cpu`` and
``VERL_USE_EXTERNAL_PLUGINS=none``. When verl has no ``cpu`` platform (unpatched), one is registered from
outside (verl-falcon-plugin's, the same class the patch adds), so that the engine registration and the
process-group backend are each checked on their own.
"""

from __future__ import annotations

import json
import os
import socket

import torch
import verl
from verl.plugin.platform import get_platform


def attempt(step):
    try:
        return step()
    except Exception as error:  # reported, not hidden: the test asserts on it
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"


def platform_name() -> str:
    return get_platform().device_name


def engine() -> str:
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp import transformer_impl  # noqa: F401  (registers the FSDP engines)

    return EngineRegistry.get_engine_cls("language_model", "fsdp").__name__


def process_group() -> dict:
    from verl.utils.distributed import initialize_global_process_group

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    initialize_global_process_group(timeout_second=60)
    value = torch.ones(2)
    torch.distributed.all_reduce(value)
    result = {"backend": torch.distributed.get_backend(), "all_reduce": value.tolist()}
    torch.distributed.destroy_process_group()
    return result


ANSWERS = (
    "device_name", "vendor_name", "is_available", "current_device", "device_count", "communication_backend_name",
    "visible_devices_envvar", "ray_resource_name", "ray_noset_envvars", "is_ipc_supported",
)  # fmt: skip


def answers(platform) -> dict:
    values = {}
    for name in ANSWERS:
        value = getattr(platform, name)
        values[name] = value() if callable(value) else value
    values["is_platform_available"] = platform.is_platform_available(use_smi_check=True)
    return values


def differences_from_the_plugin() -> list[str]:
    """The patch's platform should answer as verl-falcon-plugin's (the code it was taken from) does."""
    from verl_falcon_plugin.cpu.platform import PlatformCPU as PluginPlatform

    ours, plugin = answers(get_platform()), answers(PluginPlatform())
    return sorted(name for name in ours if ours[name] != plugin[name])


def main() -> None:
    result = {"verl": verl.__file__, "platform": attempt(platform_name)}
    if result["platform"] == "cpu":
        result["differences_from_the_plugin"] = differences_from_the_plugin()
    if result["platform"] != "cpu":
        from verl_falcon_plugin.cpu import platform as outside

        outside.register()
        result["registered_from_outside"] = platform_name()
    result["engine"] = attempt(engine)
    result["process_group"] = attempt(process_group)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
