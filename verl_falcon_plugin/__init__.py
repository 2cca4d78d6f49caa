"""verl-side Falcon-H1R plugins: model patches, losses, sampling, rewards, data and the preflight.

Importing this package imports no framework; each feature imports its framework
when used (see ``verl_falcon_plugin.requires``).
"""

from verl_falcon_plugin.activation import ACTIVATION, register

__version__ = "0.1.0"

__all__ = ["ACTIVATION", "__version__", "register"]
