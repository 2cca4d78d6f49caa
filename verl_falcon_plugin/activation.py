"""Activation of the plugin inside verl: every registry entry and patch, in one place.

verl imports the ``verl.plugins`` entry points on every ``import verl``, in the
driver and in every Ray worker, but it swallows their exceptions at DEBUG level.
So :func:`register` logs at INFO each thing it installed, logs at ERROR *and*
raises on what it could not, and records the outcome in :data:`ACTIVATION` for
``falcon-h1r check`` to verify.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable

from packaging.specifiers import SpecifierSet
from packaging.version import Version

logger = logging.getLogger("verl_falcon_plugin")

#: verl versions whose internals our patches were written and tested against.
SUPPORTED_VERL = SpecifierSet(">=0.9.1,<0.10")

#: (what it is, "module:function"). Each installer is idempotent and returns the
#: human-readable names of what it registered or patched. Areas add their line here.
INSTALLERS: tuple[tuple[str, str], ...] = (
    (
        "Falcon-H1 packed + Ulysses patches in verl's apply_monkey_patch",
        "verl_falcon_plugin.models.falcon_h1.verl_hook:install",
    ),
    ("Liger kernels for Falcon-H1 behind model.use_liger", "liger_patches.verl_hook:install"),
    (
        "streaming SFT dataloader + empty_cache hook in SFTTrainer",
        "verl_falcon_plugin.data.sft_trainer_hooks:install",
    ),
    ("balanced DP token loss and the falcon_h1r policy loss", "verl_falcon_plugin.losses.verl_hook:install"),
)


class UnsupportedVersionError(RuntimeError):
    """The installed framework version is one our patches were not written for."""


class ActivationError(RuntimeError):
    """An installer failed: the plugin is not (fully) active."""


@dataclass
class Activation:
    done: bool = False
    installed: list[str] = field(default_factory=list)


ACTIVATION = Activation()
_LOCK = threading.Lock()


def check_verl_version(version: str) -> None:
    if Version(version) not in SUPPORTED_VERL:
        raise UnsupportedVersionError(
            f"verl-falcon-plugin supports verl {SUPPORTED_VERL} but verl {version} is installed: "
            f"install a supported verl (pip install 'verl-falcon-plugin[verl]') or uninstall the plugin"
        )


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


def register() -> list[str]:
    """Install every Falcon-H1R patch and registry entry into verl; idempotent.

    Returns what is installed. Raises :class:`UnsupportedVersionError` or
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
            for what, target in INSTALLERS:
                try:
                    names = _resolve(target)()
                except Exception as err:
                    raise ActivationError(f"could not install {what} ({target}): {err}") from err
                for name in names:
                    logger.info("falcon_h1r: installed %s", name)
                ACTIVATION.installed.extend(names)
        except Exception:
            logger.exception("falcon_h1r: activation FAILED; the plugin is not active")
            raise
        ACTIVATION.done = True
        logger.info("falcon_h1r: plugin active in verl %s (%d entries)", verl.__version__, len(ACTIVATION.installed))
        return list(ACTIVATION.installed)
