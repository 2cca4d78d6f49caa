"""verl-side Falcon-H1R plugins: model patches, losses, sampling, rewards, data and the preflight.

Importing this package imports no framework; each feature imports its framework
when used (see ``verl_falcon_plugin.requires``).
"""

from verl_falcon_plugin.activation import ACTIVATION, register
from verl_falcon_plugin.lazy import lazy_exports

__version__ = "0.1.0"

#: public names imported on first use, so that importing the package imports no framework
_LAZY = {
    "patch_falcon_h1": ".models.falcon_h1.patch",
    "unpatch_falcon_h1": ".models.falcon_h1.patch",
    "set_sequence_parallel_group": ".models.falcon_h1.ulysses",
}

__all__ = ["ACTIVATION", "__version__", "register", *_LAZY]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
