"""Activation of the plugin inside verl: every registry entry and patch, in one place.

verl imports the ``verl.plugins`` entry points on every ``import verl``, in the
driver and in every Ray worker, but it swallows their exceptions at DEBUG level.
So :func:`register` logs at INFO each thing it installed, logs at ERROR *and*
raises on what it could not, and records the outcome in :data:`ACTIVATION` for
``falcon-h1r check`` to verify.

Activation is lazy: an installer with trigger modules runs when the first of them is
imported (:mod:`verl_falcon_plugin.import_hooks`), right after that module's code and
before the import statement continues. A process that never builds a training engine
never imports one for our sake. ``VERL_PLATFORM=cpu`` first registers the ``cpu``
platform (verl asks for its platform as soon as its engine or PPO constants are
imported), then arms the CPU installers of :mod:`verl_falcon_plugin.cpu.activation`;
without it no CPU code is imported.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from verl_falcon_plugin import import_hooks

logger = logging.getLogger("verl_falcon_plugin")

#: verl versions whose internals our patches were written and tested against.
SUPPORTED_VERL = SpecifierSet(">=0.9.1,<0.10")

_ENGINE = "verl.workers.engine.fsdp.transformer_impl"
_STEPS = "verl_falcon_plugin.lazy_steps"

#: (what it is, "module:function", trigger modules). Each installer is idempotent and returns the
#: human-readable names of what it registered or patched; it runs once each trigger module is imported
#: (at once when there is no trigger). Areas add their line here.
INSTALLERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "Falcon-H1 packed + Ulysses patches in verl's apply_monkey_patch",
        f"{_STEPS}:wrap_apply_monkey_patch",
        ("verl.models.transformers.monkey_patch",),
    ),
    (
        "Falcon-H1 packed + Ulysses patches in verl's apply_monkey_patch (every reference)",
        "verl_falcon_plugin.models.falcon_h1.verl_hook:install",
        (_ENGINE,),
    ),
    (
        "Liger kernels for Falcon-H1 behind model.use_liger",
        "liger_patches.verl_hook:install",
        ("liger_kernel.transformers.monkey_patch", "verl.models.transformers.dense_common"),
    ),
    (
        # the second trigger covers `python -m verl.trainer.sft_trainer`: there the trainer class lives in __main__
        # and exists only once verl's main() runs; main() imports the streaming dataset (data.custom_cls) before
        # it builds the dataloader, and install() then patches __main__.SFTTrainer too
        "streaming SFT dataloader + empty_cache hook in SFTTrainer",
        "verl_falcon_plugin.data.sft_trainer_hooks:install",
        ("verl.trainer.sft_trainer", "verl_falcon_plugin.data.streaming_sft"),
    ),
    ("the falcon_h1r policy loss", f"{_STEPS}:register_policy_loss", ("verl.trainer.ppo.core_algos",)),
    ("DP-global positive-token count", f"{_STEPS}:patch_forward_backward_batch", (_ENGINE,)),
    ("positive-token count to the falcon_h1r loss", f"{_STEPS}:patch_ppo_loss", ("verl.workers.engine_workers",)),
    ("balanced DP SFT loss", f"{_STEPS}:patch_sft_trainer_build_engine", ("verl.trainer.sft_trainer",)),
    ("balanced DP SFT loss (Ray)", f"{_STEPS}:patch_sft_trainer_ray_build_engine", ("verl.trainer.sft_trainer_ray",)),
    ("optim.lr_scheduler_type=linear (config)", f"{_STEPS}:patch_optimizer_config", ("verl.workers.config.optimizer",)),
    ("optim.lr_scheduler_type=linear (engine)", f"{_STEPS}:patch_lr_scheduler", (_ENGINE,)),
)

CPU_PLATFORM_ENV = "VERL_PLATFORM"


class UnsupportedVersionError(RuntimeError):
    """The installed framework version is one our patches were not written for."""


class ActivationError(RuntimeError):
    """An installer failed: the plugin is not (fully) active."""


@dataclass
class Activation:
    done: bool = False
    installed: list[str] = field(default_factory=list)


ACTIVATION = Activation()
_LOCK = threading.RLock()


def check_verl_version(version: str) -> None:
    if Version(version) not in SUPPORTED_VERL:
        raise UnsupportedVersionError(
            f"verl-falcon-plugin supports verl {SUPPORTED_VERL} but verl {version} is installed: "
            f"install a supported verl (pip install 'verl-falcon-plugin[verl]') or uninstall the plugin"
        )


def cpu_platform_requested() -> bool:
    return os.environ.get(CPU_PLATFORM_ENV, "").strip().lower() == "cpu"


def _resolve(target: str) -> Callable[[], list[str]]:
    module_name, _, function_name = target.partition(":")
    return getattr(importlib.import_module(module_name), function_name)


def _import_verl():
    try:
        import verl
    except Exception:
        logger.exception("falcon_h1r: activation FAILED: verl cannot be imported")
        raise
    return verl


def _install(what: str, target: str) -> list[str]:
    try:
        names = _resolve(target)()
    except Exception as err:
        raise ActivationError(f"could not install {what} ({target}): {err}") from err
    for name in names:
        logger.info("falcon_h1r: installed %s", name)
    with _LOCK:
        ACTIVATION.installed.extend(names)
    return list(names)


def _install_on_import(what: str, target: str, trigger: str) -> Callable[[object], None]:
    def hook(_module: object) -> None:
        try:
            _install(what, target)
        except Exception:
            logger.exception("falcon_h1r: activation FAILED on import of %s; the plugin is not active", trigger)
            raise

    return hook


def _arm(installers: Sequence[tuple]) -> list[str]:
    """Install the trigger-less installers now, hook the others on their trigger modules."""
    names: list[str] = []
    for what, target, *rest in installers:
        triggers = tuple(rest[0]) if rest else ()
        if not triggers:
            names += _install(what, target)
            continue
        for trigger in triggers:
            armed = f"{what} (when {trigger} is imported)"
            logger.info("falcon_h1r: installed %s", armed)
            with _LOCK:
                ACTIVATION.installed.append(armed)
            names.append(armed)
            import_hooks.when_imported(trigger, _install_on_import(what, target, trigger))
    return names


def register() -> list[str]:
    """Install (or arm, see the module docstring) every Falcon-H1R patch and registry entry; idempotent.

    Returns what is installed or armed. Raises :class:`UnsupportedVersionError` or
    :class:`ActivationError` (after logging it at ERROR, since verl's plugin
    loader would otherwise hide it).
    """
    # Outside the lock: a first `import verl` loads our entry point, which calls register() itself.
    verl = _import_verl()
    with _LOCK:
        if ACTIVATION.done:
            return list(ACTIVATION.installed)
        try:
            check_verl_version(verl.__version__)
            if cpu_platform_requested():
                from verl_falcon_plugin.cpu import activation as cpu_activation

                _install("the cpu platform", "verl_falcon_plugin.cpu.platform:register")
                _arm(cpu_activation.CPU_INSTALLERS)
            _arm(INSTALLERS)
        except Exception:
            logger.exception("falcon_h1r: activation FAILED; the plugin is not active")
            raise
        ACTIVATION.done = True
        logger.info("falcon_h1r: plugin active in verl %s (%d entries)", verl.__version__, len(ACTIVATION.installed))
        return list(ACTIVATION.installed)


def install_pending() -> list[str]:
    """Import every installed module a lazy installer waits for, so that each installer runs now.

    For the preflight (``falcon-h1r check``), which must prove every patch installs in this environment.
    Modules that are not installed (e.g. Liger) are skipped; an installer that fails raises.
    """
    import importlib.util

    names = []
    for module_name in list(import_hooks.pending()):
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:  # its parent package is not installed
            found = False
        if found:
            before = len(ACTIVATION.installed)
            importlib.import_module(module_name)
            names += ACTIVATION.installed[before:]
    return names
