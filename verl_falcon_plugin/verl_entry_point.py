"""Target of the ``verl.plugins`` entry point: importing this module activates the plugin.

verl's loader calls ``entry_point.load()`` and never calls what it loaded, so the
activation has to happen on import. verl also sets the root logger to WARNING,
which would hide our INFO report of what was patched; our own logger keeps INFO
(override with ``FALCON_H1R_LOG_LEVEL``).
"""

import logging
import os

from verl_falcon_plugin.activation import register

logging.getLogger("verl_falcon_plugin").setLevel(os.getenv("FALCON_H1R_LOG_LEVEL", "INFO").upper())

register()
