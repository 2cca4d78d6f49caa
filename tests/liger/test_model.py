"""The whole tiny Falcon-H1 (random non-trivial µP multipliers): loss and every gradient, Liger vs HF.

Reference: unpatched HF transformers, same weights, same batch, train mode.
Tolerance: 2e-5 absolute on the loss, and on each gradient 1e-4 relative to
its largest entry (fp32, Triton interpreter; the fused CE folds the multiplier
into the hidden states, which reorders one product).
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers.models.falcon_h1 import modeling_falcon_h1 as modeling

from liger_patches import apply_liger_kernel_to_falcon_h1
from verl_falcon_plugin.testing.tiny_falcon_h1 import GROUPED_GEOMETRY, VLLM_SERVABLE_GEOMETRY, tiny_falcon_h1

pytestmark = pytest.mark.slow

LOSS_TOL = 2e-5
GRAD_RTOL = 1e-4
GEOMETRIES = {"servable_n_groups_1": VLLM_SERVABLE_GEOMETRY, "grouped_n_groups_2": GROUPED_GEOMETRY}


def batch(vocab_size: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (2, 8), generator=generator)
    labels = input_ids.clone()
    labels[1, :3] = -100
    return input_ids, labels


def loss_and_grads(model, input_ids, labels):
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=input_ids, labels=labels).loss
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def worst_grad_error(grads, ref_grads) -> tuple[float, str]:
    assert grads.keys() == ref_grads.keys()
    errors = {n: ((grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-6)).item() for n, g in ref_grads.items()}
    name = max(errors, key=errors.get)
    return errors[name], name


def assert_matches(model, reference, input_ids, labels):
    ref_loss, ref_grads = loss_and_grads(reference, input_ids, labels)
    loss, grads = loss_and_grads(model, input_ids, labels)
    assert abs(loss.item() - ref_loss.item()) < LOSS_TOL, (loss.item(), ref_loss.item())
    error, name = worst_grad_error(grads, ref_grads)
    assert error < GRAD_RTOL, f"gradient of {name} off by {error:.2e} (relative)"


def assert_fully_patched(model) -> None:
    layer = model.model.layers[0]
    assert model.forward.__name__ == "falcon_h1_lce_forward"
    assert layer.feed_forward.forward.__func__.__name__ == "liger_falcon_h1_mlp_forward"
    assert layer.mamba.norm.forward.__func__.__qualname__ == "LigerFalconH1RMSNormGated.forward"
    assert layer.input_layernorm.forward.__func__.__qualname__ == "LigerRMSNorm.forward"
    assert modeling.apply_rotary_pos_emb.__module__ == "liger_kernel.transformers.rope"


@pytest.mark.parametrize("geometry", list(GEOMETRIES), ids=list(GEOMETRIES))
def test_instance_level_patch_matches_hf(geometry):
    # two layers once (the grouped model), one elsewhere: more layers only repeat the same modules
    layers = 2 if GEOMETRIES[geometry]["mamba_n_groups"] > 1 else 1
    reference = tiny_falcon_h1(GEOMETRIES[geometry], seed=3, num_hidden_layers=layers)
    model = copy.deepcopy(reference)
    input_ids, labels = batch(reference.config.vocab_size)
    ref_loss, ref_grads = loss_and_grads(reference, input_ids, labels)  # before any patching

    apply_liger_kernel_to_falcon_h1(model=model)
    assert_fully_patched(model)
    assert model.state_dict().keys() == reference.state_dict().keys()
    loss, grads = loss_and_grads(model, input_ids, labels)
    assert abs(loss.item() - ref_loss.item()) < LOSS_TOL
    error, name = worst_grad_error(grads, ref_grads)
    assert error < GRAD_RTOL, f"gradient of {name} off by {error:.2e} (relative)"


def test_class_level_patch_matches_hf():
    reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=4, mlp_bias=True, num_hidden_layers=1)
    input_ids, labels = batch(reference.config.vocab_size, seed=1)
    ref_loss, ref_grads = loss_and_grads(reference, input_ids, labels)

    apply_liger_kernel_to_falcon_h1()
    model = tiny_falcon_h1(GROUPED_GEOMETRY, seed=4, mlp_bias=True, num_hidden_layers=1)
    assert type(model.model.layers[0].mamba.norm).__name__ == "LigerFalconH1RMSNormGated"
    assert type(model.model.layers[0].feed_forward).__name__ == "LigerFalconH1MLP"
    assert type(model.model.final_layernorm).__name__ == "LigerRMSNorm"
    model.load_state_dict(reference.state_dict())
    loss, grads = loss_and_grads(model, input_ids, labels)
    assert abs(loss.item() - ref_loss.item()) < LOSS_TOL
    error, name = worst_grad_error(grads, ref_grads)
    assert error < GRAD_RTOL, f"gradient of {name} off by {error:.2e} (relative)"


def test_logits_are_hf_logits_when_not_training():
    reference = tiny_falcon_h1(VLLM_SERVABLE_GEOMETRY, seed=5, num_hidden_layers=1)
    model = copy.deepcopy(reference)
    input_ids, labels = batch(reference.config.vocab_size)
    with torch.no_grad():
        ref = reference(input_ids=input_ids, labels=labels)
        apply_liger_kernel_to_falcon_h1(model=model)
        ours = model.eval()(input_ids=input_ids, labels=labels)
    assert (ours.logits - ref.logits).abs().max() < 1e-4
    assert abs(ours.loss.item() - ref.loss.item()) < LOSS_TOL


def test_a_dropped_multiplier_is_caught_by_the_whole_model_comparison():
    """Deliberately broken variant: the MLP forgets down_multiplier; the same assertion must fail."""
    from liger_kernel.ops import LigerSiLUMulFunction

    def forward_without_down_multiplier(self, x):
        return self.down_proj(
            LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x), float(self.gate_multiplier), 1.0)
        )

    reference = tiny_falcon_h1(VLLM_SERVABLE_GEOMETRY, seed=3, num_hidden_layers=1)
    model = copy.deepcopy(reference)
    input_ids, labels = batch(reference.config.vocab_size)
    apply_liger_kernel_to_falcon_h1(model=model)
    for layer in model.model.layers:
        layer.feed_forward.forward = forward_without_down_multiplier.__get__(layer.feed_forward)
    with pytest.raises(AssertionError):
        assert_matches(model, reference, input_ids, labels)


def test_upstream_liger_patch_is_wrong_with_mlp_bias_on_the_whole_model():
    """Liger 0.8.5's own apply_liger_kernel_to_falcon_h1 fails the comparison when mlp_bias=True."""
    from liger_kernel.transformers.monkey_patch import apply_liger_kernel_to_falcon_h1 as upstream_apply

    reference = tiny_falcon_h1(VLLM_SERVABLE_GEOMETRY, seed=6, mlp_bias=True, num_hidden_layers=1)
    model = copy.deepcopy(reference)
    input_ids, labels = batch(reference.config.vocab_size)
    ref_loss, _ = loss_and_grads(reference, input_ids, labels)
    upstream_apply(model=model, rope=False, rms_norm=False, fused_linear_cross_entropy=False, swiglu=True)
    loss, _ = loss_and_grads(model, input_ids, labels)
    assert abs(loss.item() - ref_loss.item()) > 1e-3
