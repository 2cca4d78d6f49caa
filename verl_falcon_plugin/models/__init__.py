"""Model patches for verl: Falcon-H1 packed (padding-free) sequences and Ulysses sequence parallelism.

Importing this package imports no framework; :func:`patch_falcon_h1` imports torch
and transformers when called.
"""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS = {
    "patch_falcon_h1": ".falcon_h1.patch",
    "unpatch_falcon_h1": ".falcon_h1.patch",
    "set_sequence_parallel_group": ".falcon_h1.ulysses",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
