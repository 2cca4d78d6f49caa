"""Target of the ``verl.plugins`` entry point: importing this module activates the plugin.

verl's loader calls ``entry_point.load()`` and never calls what it loaded, so the
activation has to happen on import. verl also sets the root logger to WARNING,
which would hide our INFO report of what was patched; our own logger keeps INFO
(override with ``FALCON_H1R_LOG_LEVEL``).

verl's loader catches every ``Exception`` from a plugin and logs it at DEBUG, then carries
on without it (``verl/__init__.py``). A process with the plugin installed that runs without
it trains something else than asked (another loss, unpatched Falcon-H1), so a failed
activation is re-raised as :class:`PluginActivationFailed`, which derives from
``BaseException``: ``import verl`` itself fails, in the driver or the Ray worker concerned.
"""

import logging
import os

from verl_falcon_plugin.activation import register

logging.getLogger("verl_falcon_plugin").setLevel(os.getenv("FALCON_H1R_LOG_LEVEL", "INFO").upper())


class PluginActivationFailed(BaseException):
    """The plugin is installed but could not activate: this process must not run verl without it."""


try:
    register()
except Exception as err:  # verl's loader would swallow an Exception: escalate past it
    raise PluginActivationFailed(
        f"verl-falcon-plugin failed to activate: {err}. Fix the cause above, or run without the plugin "
        "(VERL_USE_EXTERNAL_PLUGINS=none, or pip uninstall verl-falcon-plugin)"
    ) from err
