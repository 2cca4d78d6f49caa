"""What patching changes and what it must not: checkpoints, generation, idempotency, composition, errors."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from verl_falcon_plugin.models.falcon_h1 import patch as patch_module  # noqa: E402
from verl_falcon_plugin.models.falcon_h1.equivalence import (  # noqa: E402
    packed_batch,
    relative_error,
    sequential_logits,
)
from verl_falcon_plugin.models.falcon_h1.patch import patch_falcon_h1, unpatch_falcon_h1  # noqa: E402
from verl_falcon_plugin.models.falcon_h1.ulysses import check_divisible  # noqa: E402
from verl_falcon_plugin.testing import GROUPED_GEOMETRY, REALISTIC_GEOMETRY, tiny_falcon_h1  # noqa: E402


@pytest.fixture(scope="module")
def models():
    reference = tiny_falcon_h1(GROUPED_GEOMETRY)
    patched = copy.deepcopy(reference)
    patch_falcon_h1(patched)
    return reference, patched


def packed_logits(model, lengths=(4, 9, 1)):
    input_ids, position_ids, sequences, _ = packed_batch(lengths, model.config.vocab_size)
    with torch.no_grad():
        return model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits, sequences


def test_state_dict_is_exactly_hfs(models):
    reference, patched = models
    ours, theirs = patched.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)
    assert all(not k.endswith("mup_vector") for k in ours)
    assert all("mup_vector" in layer.mamba._non_persistent_buffers_set for layer in patched.model.layers)


def test_generation_is_unchanged(models):
    reference, patched = models
    prompt = torch.tensor([[5, 17, 33, 2, 9, 41, 7]])
    kwargs = dict(max_new_tokens=12, do_sample=False, use_cache=True, pad_token_id=0)
    with torch.no_grad():
        expected = reference.generate(prompt, **kwargs)
        assert torch.equal(patched.generate(prompt, **kwargs), expected)
        batch = torch.tensor([[3, 5, 17, 33], [4, 8, 15, 16]])
        assert torch.equal(patched.generate(batch, **kwargs), reference.generate(batch, **kwargs))
        # A padded batch takes HF's path too. (Padded *generation* fails in transformers 5.10.4 itself at
        # the second decode step, patched or not: "size of tensor a (7) must match ... (6)".)
        padded = torch.tensor([[0, 0, 5, 17, 33], [4, 8, 15, 16, 23]])
        mask = (padded != 0).long()
        assert torch.equal(
            patched(padded, attention_mask=mask, use_cache=False).logits,
            reference(padded, attention_mask=mask, use_cache=False).logits,
        )


def test_patch_is_idempotent_and_undoable():
    reference = tiny_falcon_h1(GROUPED_GEOMETRY)
    model = copy.deepcopy(reference)
    first = patch_falcon_h1(model)
    assert patch_falcon_h1(model) == first
    logits, sequences = packed_logits(model)
    assert relative_error(logits, sequential_logits(reference, sequences).detach()) <= 1e-5
    unpatch_falcon_h1(model)
    assert "forward" not in model.model.layers[0].mamba.__dict__
    unpatched, _ = packed_logits(model)
    assert relative_error(unpatched, sequential_logits(reference, sequences).detach()) > 1e-3


def test_class_level_patch_applies_to_models_built_afterwards():
    from transformers.models.falcon_h1 import modeling_falcon_h1

    reference = tiny_falcon_h1(GROUPED_GEOMETRY)
    with torch.no_grad():
        _, sequences = packed_logits(reference)
        expected = sequential_logits(reference, sequences)
    try:
        patch_falcon_h1(modeling_falcon_h1.FalconH1ForCausalLM)
        built_after = tiny_falcon_h1(GROUPED_GEOMETRY)
        logits, _ = packed_logits(built_after)
        assert relative_error(logits, expected) <= 1e-5
    finally:
        unpatch_falcon_h1(modeling_falcon_h1)
    assert not getattr(modeling_falcon_h1.FalconH1Mixer.forward, patch_module._MARK, False)


def test_composes_with_module_swaps_in_either_order():
    """Liger-style swaps (gated norm, RMSNorm) made before or after the patch are used by the packed path."""
    reference = tiny_falcon_h1(GROUPED_GEOMETRY)
    calls = []

    class CountingNorm(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            calls.append(type(self.inner).__name__)
            return self.inner(*args)

    for swap_first in (True, False):
        calls.clear()
        model = copy.deepcopy(reference)

        def swap(model=model):
            for layer in model.model.layers:
                layer.mamba.norm = CountingNorm(layer.mamba.norm)
                layer.input_layernorm = CountingNorm(layer.input_layernorm)

        if swap_first:
            swap()
            patch_falcon_h1(model)
        else:
            patch_falcon_h1(model)
            swap()
        logits, sequences = packed_logits(model)
        assert relative_error(logits, sequential_logits(reference, sequences).detach()) <= 1e-5
        assert calls.count("FalconH1RMSNormGated") == 2 and calls.count("FalconH1RMSNorm") == 2


def test_rejects_models_that_are_not_falcon_h1():
    with pytest.raises(TypeError, match="Falcon-H1"):
        patch_falcon_h1(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="packed=True"):
        patch_falcon_h1(tiny_falcon_h1(GROUPED_GEOMETRY), packed=False, ulysses=True)


def test_sp_divisibility_error_names_both_numbers():
    config = tiny_falcon_h1(REALISTIC_GEOMETRY).config  # 12 attention heads, 2 KV heads, 24 SSM heads
    with pytest.raises(ValueError, match=r"num_attention_heads=12 is not divisible by ulysses_sp_size=8"):
        check_divisible(sp_size=8, attention_heads=12, key_value_heads=2, ssm_heads=24)
    with pytest.raises(ValueError, match=r"mamba_n_heads=6 is not divisible by ulysses_sp_size=4"):
        check_divisible(sp_size=4, attention_heads=4, key_value_heads=2, ssm_heads=6)
    check_divisible(
        sp_size=4,
        attention_heads=config.num_attention_heads,
        key_value_heads=config.num_key_value_heads,
        ssm_heads=config.mamba_n_heads,
    )


def test_public_api_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys, verl_falcon_plugin as p, verl_falcon_plugin.models as m; "
        "assert 'torch' not in sys.modules; "
        "assert p.patch_falcon_h1 is m.patch_falcon_h1; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr
