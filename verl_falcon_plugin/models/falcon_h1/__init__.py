"""Falcon-H1 (parallel attention + Mamba2) done right for training under verl.

- ``boundaries``: where each packed sequence starts, from ``position_ids`` (all SP ranks).
- ``varlen_conv`` / ``varlen_ssd``: the causal conv1d and the chunked SSD scan with
  per-sequence resets, in plain torch (CPU, tests, any device).
- ``cuda_path``: the same with mamba_ssm / causal_conv1d ``seq_idx`` kernels (GPU only).
- ``ulysses``: the process group and the autograd all-to-all / all-gather.
- ``mixer`` / ``attention`` / ``layer``: the packed and sequence-parallel forwards.
- ``patch``: :func:`patch_falcon_h1`; ``verl_hook``: the ``apply_monkey_patch`` wrapper.

No framework is imported here; see ``verl_falcon_plugin.models.falcon_h1.patch``.
"""

from verl_falcon_plugin.lazy import lazy_exports

_EXPORTS = {
    "patch_falcon_h1": ".patch",
    "unpatch_falcon_h1": ".patch",
    "set_sequence_parallel_group": ".ulysses",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
