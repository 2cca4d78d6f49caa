"""After `import verl`, verl's own apply_monkey_patch (every reference to it) applies the Falcon-H1 patch."""

from __future__ import annotations

import copy
import importlib

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

import verl  # noqa: E402,F401  (runs our entry point, as in every verl process)

from verl_falcon_plugin.activation import ACTIVATION  # noqa: E402
from verl_falcon_plugin.models.falcon_h1.equivalence import (  # noqa: E402
    packed_batch,
    relative_error,
    sequential_logits,
)
from verl_falcon_plugin.models.falcon_h1.verl_hook import REFERENCES  # noqa: E402
from verl_falcon_plugin.testing import GROUPED_GEOMETRY, REALISTIC_GEOMETRY, tiny_falcon_h1  # noqa: E402


def is_patched(model) -> bool:
    return all(
        "forward" in layer.mamba.__dict__ and "forward" in layer.self_attn.__dict__ for layer in model.model.layers
    )


def test_entry_point_installed_the_hook_on_every_reference():
    assert ACTIVATION.done
    modules = [importlib.import_module(name) for name in REFERENCES]  # activation is lazy: importing them installs it
    for name, module in zip(REFERENCES, modules):
        assert f"Falcon-H1 packed + Ulysses patch in {name}.apply_monkey_patch" in ACTIVATION.installed
        assert getattr(module.apply_monkey_patch, "_falcon_h1r_wrapped", False), name


@pytest.mark.parametrize(
    "reference_module", ["verl.models.transformers.monkey_patch", "verl.workers.engine.fsdp.transformer_impl"]
)
def test_verls_apply_monkey_patch_makes_packed_falcon_h1_correct(reference_module):
    apply_monkey_patch = importlib.import_module(reference_module).apply_monkey_patch
    reference = tiny_falcon_h1(GROUPED_GEOMETRY)
    model = copy.deepcopy(reference)
    # the keywords verl's FSDP engine passes (transformer_impl._build_module)
    apply_monkey_patch(
        model=model, use_remove_padding=True, ulysses_sp_size=1, use_fused_kernels=False, fused_kernels_backend=None
    )
    assert is_patched(model)
    input_ids, position_ids, sequences, _ = packed_batch((7, 1, 12), model.config.vocab_size)
    with torch.no_grad():
        logits = model(input_ids=input_ids, position_ids=position_ids, attention_mask=None, use_cache=False).logits
        expected = sequential_logits(reference, sequences)
        unpatched = reference(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
    assert relative_error(logits, expected) <= 1e-5
    assert relative_error(unpatched, expected) > 1e-3


def test_padded_path_without_sp_is_left_to_hf():
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    model = tiny_falcon_h1(GROUPED_GEOMETRY)
    apply_monkey_patch(model, ulysses_sp_size=1, use_remove_padding=False)
    assert not is_patched(model)


def test_sp_degree_that_does_not_divide_the_ssm_heads_is_refused_with_both_numbers():
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    model = tiny_falcon_h1(REALISTIC_GEOMETRY)  # 12 attention heads, 24 SSM heads
    with pytest.raises(ValueError, match=r"num_attention_heads=12 is not divisible by ulysses_sp_size=8"):
        apply_monkey_patch(model, ulysses_sp_size=8)
    model.config.mamba_n_heads = 18  # only the SSM heads are now indivisible by 4
    with pytest.raises(ValueError, match=r"mamba_n_heads=18 is not divisible by ulysses_sp_size=4"):
        apply_monkey_patch(model, ulysses_sp_size=4)


def test_other_models_are_left_to_verl():
    from transformers import LlamaConfig, LlamaForCausalLM
    from verl.models.transformers.monkey_patch import apply_monkey_patch

    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    apply_monkey_patch(llama, ulysses_sp_size=1, use_remove_padding=True)
    assert all("forward" not in module.__dict__ for module in llama.modules())
