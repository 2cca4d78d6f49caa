"""The embedded sandbox: Sandbox-Fusion's ``/run_code`` protocol served from this machine, no Docker.

See :mod:`verl_falcon_plugin.rewards.sandbox.runner` for what isolation a run gets and,
as importantly, what it does not (the README's "The embedded sandbox" lists both, with measured
limits). Start one with ``falcon-h1r sandbox serve`` or, in-process,
``with embedded_sandbox(workers=2) as url: ...``.
"""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS = {
    "Sandbox": "verl_falcon_plugin.rewards.sandbox.runner",
    "SandboxLimits": "verl_falcon_plugin.rewards.sandbox.request",
    "SandboxServer": "verl_falcon_plugin.rewards.sandbox.server",
    "embedded_sandbox": "verl_falcon_plugin.rewards.sandbox.server",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
