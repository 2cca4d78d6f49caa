"""Liger-patched vs unpatched Falcon-H1 on a tiny model: the measurement behind the preflight check."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Iterator

from verl_falcon_plugin.requires import require

FEATURE = "the Liger Falcon-H1 equivalence check"
PATCHED_MODULE_ATTRIBUTES = ("apply_rotary_pos_emb", "FalconH1RMSNorm", "FalconH1RMSNormGated", "FalconH1MLP")


@dataclass(frozen=True)
class Equivalence:
    loss_error: float
    worst_grad_error: float  # relative to the largest entry of that gradient
    worst_grad_name: str


@contextlib.contextmanager
def falcon_h1_module_restored() -> Iterator[None]:
    """Undo the class-level side effects of patching (Liger patches transformers' module globals)."""
    modeling = require("transformers.models.falcon_h1.modeling_falcon_h1", FEATURE)
    saved = {name: getattr(modeling, name) for name in PATCHED_MODULE_ATTRIBUTES}
    saved_forward = modeling.FalconH1ForCausalLM.forward
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(modeling, name, value)
        modeling.FalconH1ForCausalLM.forward = saved_forward


def _loss_and_grads(model, input_ids, labels):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=input_ids, labels=labels).loss
    loss.backward()
    return loss.detach().float(), {n: p.grad.detach().float() for n, p in model.named_parameters()}


def measure_equivalence(device: str = "cpu", seed: int = 0, **patch_flags) -> Equivalence:
    """Loss and gradients of an instance-patched tiny model (n_groups=2, mlp_bias) against HF's."""
    torch = require("torch", FEATURE)
    from liger_patches.falcon_h1 import apply_liger_kernel_to_falcon_h1
    from verl_falcon_plugin.testing.tiny_falcon_h1 import GROUPED_GEOMETRY, tiny_falcon_h1

    reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=seed, mlp_bias=True).to(device)
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, reference.config.vocab_size, (2, 12), generator=generator).to(device)
    labels = input_ids.clone()
    labels[1, :4] = -100
    ref_loss, ref_grads = _loss_and_grads(reference, input_ids, labels)
    with falcon_h1_module_restored():
        model = copy.deepcopy(reference)
        apply_liger_kernel_to_falcon_h1(model=model, **patch_flags)
        loss, grads = _loss_and_grads(model, input_ids, labels)
    errors = {n: ((grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-6)).item() for n, g in ref_grads.items()}
    worst = max(errors, key=errors.get)
    return Equivalence(abs(loss.item() - ref_loss.item()), errors[worst], worst)
