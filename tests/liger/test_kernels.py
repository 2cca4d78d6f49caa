"""Each fused kernel against the HF transformers / torch reference, forward and backward.

Tolerances (fp32 on the Triton interpreter): 1e-5 absolute on outputs and
gradients of O(1) tensors unless stated. Every test also shows the comparison
can fail: the nearest *wrong* function (other gate order, one group instead
of two, a dropped multiplier, upstream's MLP with biases) is far outside it.
"""

from __future__ import annotations

import pytest
import torch
from transformers.models.falcon_h1 import modeling_falcon_h1 as modeling

from verl_falcon_plugin.testing.tiny_falcon_h1 import tiny_falcon_h1_config

pytestmark = pytest.mark.slow

TOL = 1e-5


def max_err(a, b) -> float:
    return (a.float() - b.float()).abs().max().item()


def grads(output, inputs, upstream):
    return torch.autograd.grad(output, inputs, upstream)


def test_rope_matches_hf_forward_and_backward():
    from liger_kernel.transformers.rope import liger_rotary_pos_emb

    torch.manual_seed(0)
    batch, q_heads, kv_heads, seq, head_dim = 2, 4, 2, 16, 16
    config = tiny_falcon_h1_config(head_dim=head_dim, num_attention_heads=q_heads, num_key_value_heads=kv_heads)
    rotary = modeling.FalconH1RotaryEmbedding(config)
    position_ids = torch.arange(seq).repeat(batch, 1)
    cos, sin = rotary(torch.empty(1, dtype=torch.float32), position_ids)
    q = torch.randn(batch, q_heads, seq, head_dim, requires_grad=True)
    k = torch.randn(batch, kv_heads, seq, head_dim, requires_grad=True)
    dq, dk = torch.randn_like(q), torch.randn_like(k)

    ref = modeling.apply_rotary_pos_emb(q, k, cos, sin)
    ours = liger_rotary_pos_emb(q, k, cos, sin)
    ref_grads = torch.autograd.grad(ref, (q, k), (dq, dk))
    our_grads = torch.autograd.grad(ours, (q, k), (dq, dk))
    assert max(max_err(a, b) for a, b in zip(ref, ours)) < TOL
    assert max(max_err(a, b) for a, b in zip(ref_grads, our_grads)) < TOL
    assert max_err(ref[0], q) > 0.1  # the rotation is not the identity here


def test_rms_norm_matches_hf_forward_and_backward():
    from liger_kernel.transformers.rms_norm import LigerRMSNorm

    torch.manual_seed(0)
    ref = modeling.FalconH1RMSNorm(64, eps=1e-5)
    with torch.no_grad():
        ref.weight.normal_()
    ours = LigerRMSNorm(64, eps=1e-5, casting_mode="llama", in_place=False)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 7, 64, requires_grad=True)
    dy = torch.randn(3, 7, 64)
    y_ref, y = ref(x), ours(x)
    g_ref = grads(y_ref, (x, ref.weight), dy)
    g = grads(y, (x, ours.weight), dy)
    assert max_err(y_ref, y) < TOL
    assert max(max_err(a, b) for a, b in zip(g_ref, g)) < 1e-4  # weight grad sums 21 rows


@pytest.mark.parametrize("n_groups", [1, 2])
@pytest.mark.parametrize("norm_before_gate", [False, True])
@pytest.mark.parametrize("with_gate", [True, False])
def test_gated_rms_norm_matches_hf_forward_and_backward(n_groups, norm_before_gate, with_gate):
    from liger_patches import LigerFalconH1RMSNormGated

    torch.manual_seed(n_groups + 2 * norm_before_gate)
    dim = 64
    ref = modeling.FalconH1RMSNormGated(dim, eps=1e-5, n_groups=n_groups, norm_before_gate=norm_before_gate)
    with torch.no_grad():
        ref.weight.normal_()
    ours = LigerFalconH1RMSNormGated(dim, eps=1e-5, n_groups=n_groups, norm_before_gate=norm_before_gate)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 9, dim, requires_grad=True)
    z = torch.randn(2, 9, dim, requires_grad=True) if with_gate else None
    dy = torch.randn(2, 9, dim)
    inputs_ref = [x, ref.weight] + ([z] if with_gate else [])
    inputs = [x, ours.weight] + ([z] if with_gate else [])

    y_ref, y = ref(x, z), ours(x, z)
    assert max_err(y_ref, y) < TOL
    for a, b in zip(grads(y_ref, inputs_ref, dy), grads(y, inputs, dy)):
        assert max_err(a, b) < 1e-4  # weight grad sums 18 rows

    # the comparison discriminates: the other group count, the other gate order differ
    other_groups = LigerFalconH1RMSNormGated(dim, 1e-5, 3 - n_groups, norm_before_gate)
    other_groups.load_state_dict(ref.state_dict())
    assert max_err(y_ref, other_groups(x, z)) > 1e-2
    if with_gate:
        other_order = LigerFalconH1RMSNormGated(dim, 1e-5, n_groups, not norm_before_gate)
        other_order.load_state_dict(ref.state_dict())
        assert max_err(y_ref, other_order(x, z)) > 1e-2


def test_gated_rms_norm_bf16_and_decode_shape():
    """bf16 activations (fp32 weight, as under FSDP mixed precision) and the 2-D decode-step input."""
    from liger_patches import LigerFalconH1RMSNormGated

    torch.manual_seed(0)
    ref = modeling.FalconH1RMSNormGated(64, eps=1e-6, n_groups=2, norm_before_gate=False)
    with torch.no_grad():
        ref.weight.normal_()
    ours = LigerFalconH1RMSNormGated(64, eps=1e-6, n_groups=2, norm_before_gate=False)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 64).to(torch.bfloat16)
    z = torch.randn(5, 64).to(torch.bfloat16)
    y_ref, y = ref(x, z), ours(x, z)
    assert y.dtype == y_ref.dtype == torch.bfloat16 and y.shape == y_ref.shape
    assert max_err(y_ref, y) <= 2**-6 * y_ref.float().abs().max().item()  # one bf16 ulp of the largest value


def test_gated_rms_norm_rejects_bad_groups():
    from liger_patches import liger_gated_rms_norm

    with pytest.raises(ValueError, match="n_groups=3 must divide"):
        liger_gated_rms_norm(torch.randn(2, 64), None, torch.ones(64), 1e-6, n_groups=3)


def _hf_and_ours_mlp(mlp_bias: bool):
    from liger_patches import LigerFalconH1MLP

    config = tiny_falcon_h1_config(mlp_bias=mlp_bias)
    torch.manual_seed(0)
    ref = modeling.FalconH1MLP(config)
    if mlp_bias:
        with torch.no_grad():
            for linear in (ref.gate_proj, ref.up_proj, ref.down_proj):
                linear.bias.normal_()
    ours = LigerFalconH1MLP(config)
    ours.load_state_dict(ref.state_dict())
    return config, ref, ours


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_swiglu_mlp_with_multipliers_matches_hf(mlp_bias):
    config, ref, ours = _hf_and_ours_mlp(mlp_bias)
    gate_multiplier, down_multiplier = config.mlp_multipliers
    assert abs(gate_multiplier - 1) > 0.05 and abs(down_multiplier - 1) > 0.05
    x = torch.randn(2, 8, config.hidden_size, requires_grad=True)
    dy = torch.randn(2, 8, config.hidden_size)
    y_ref, y = ref(x), ours(x)
    assert max_err(y_ref, y) < TOL
    params_ref = [x] + list(ref.parameters())
    params = [x] + list(ours.parameters())
    for a, b in zip(grads(y_ref, params_ref, dy), grads(y, params, dy)):
        assert max_err(a, b) < 1e-4


def test_upstream_liger_mlp_is_wrong_with_mlp_bias_and_ours_is_not():
    """Liger 0.8.5 folds down_multiplier before down_proj, so the bias gets scaled by it too."""
    from liger_kernel.transformers.swiglu import LigerFalconH1SwiGLUMLP

    for mlp_bias, upstream_exact in ((False, True), (True, False)):
        config, ref, ours = _hf_and_ours_mlp(mlp_bias)
        upstream = LigerFalconH1SwiGLUMLP(config)
        upstream.load_state_dict(ref.state_dict())
        x = torch.randn(4, config.hidden_size)
        y_ref = ref(x)
        assert max_err(y_ref, ours(x)) < TOL
        upstream_err = max_err(y_ref, upstream(x))
        if upstream_exact:
            assert upstream_err < TOL
        else:
            # exactly (down_multiplier - 1) * down_proj.bias
            _, down_multiplier = config.mlp_multipliers
            expected = ((down_multiplier - 1) * ref.down_proj.bias).abs().max().item()
            assert upstream_err == pytest.approx(expected, rel=1e-4) and upstream_err > 1e-2


def test_swiglu_with_a_dropped_multiplier_is_caught():
    """The deliberately broken variant: the same comparison fails when down_multiplier is dropped."""
    from liger_kernel.ops import LigerSiLUMulFunction

    config, ref, _ = _hf_and_ours_mlp(True)

    def broken_forward(self, x):
        activated = LigerSiLUMulFunction.apply(self.gate_proj(x), self.up_proj(x), float(self.gate_multiplier), 1.0)
        return self.down_proj(activated)  # down_multiplier dropped

    x = torch.randn(4, config.hidden_size)
    assert max_err(ref(x), broken_forward(ref, x)) > 1e-2
