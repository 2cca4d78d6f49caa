"""verl's ``model.use_liger=True`` path applies our function for falcon_h1.

The call is read from verl's own source (``FSDPEngine._build_module`` in
``verl/workers/engine/fsdp/transformer_impl.py``) and replayed with its exact
keyword arguments, so a verl upgrade that changes it fails here first.
"""

from __future__ import annotations

import ast
import copy
import inspect

import pytest
import torch

from verl_falcon_plugin.testing.tiny_falcon_h1 import GROUPED_GEOMETRY, tiny_falcon_h1

pytestmark = pytest.mark.slow


def verl_use_liger_call():
    """(module it imports from, function name, keyword arguments) of verl's use_liger call."""
    transformer_impl = pytest.importorskip("verl.workers.engine.fsdp.transformer_impl")
    tree = ast.parse(inspect.getsource(transformer_impl))
    imports = {
        alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if "liger" in (node.module or "")
    }
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in imports
    ]
    assert len(calls) == 1, f"verl's use_liger path changed: {[ast.unparse(c) for c in calls]}"
    call = calls[0]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg != "model"}
    return imports[call.func.id], call.func.id, kwargs


def test_verl_calls_liger_instance_patch_without_fused_linear_ce():
    module, name, kwargs = verl_use_liger_call()
    assert (module, name) == ("liger_kernel.transformers.monkey_patch", "_apply_liger_kernel_to_instance")
    assert kwargs == {"fused_linear_cross_entropy": False, "swiglu": True}


def test_use_liger_applies_our_function_and_keeps_hf_logits():
    import importlib

    from verl.utils.torch_functional import logprobs_from_logits

    from liger_patches.verl_hook import install

    module, name, kwargs = verl_use_liger_call()
    apply_to_instance = getattr(importlib.import_module(module), name)
    reference = tiny_falcon_h1(GROUPED_GEOMETRY, seed=7, mlp_bias=True)
    model = copy.deepcopy(reference)
    input_ids = torch.randint(3, reference.config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref_logprobs = logprobs_from_logits(reference(input_ids=input_ids).logits[:, :-1], input_ids[:, 1:])

    names = install()
    assert any("MODEL_TYPE_TO_APPLY_LIGER_FN['falcon_h1']" in name for name in names)
    assert install() == names  # idempotent
    apply_to_instance(model=model, **kwargs)

    layer = model.model.layers[0]
    assert layer.mamba.norm.forward.__func__.__qualname__ == "LigerFalconH1RMSNormGated.forward"
    assert layer.feed_forward.forward.__func__.__name__ == "liger_falcon_h1_mlp_forward"
    assert "forward" not in model.__dict__  # verl asked for no fused linear CE: HF's LM head, with logits
    with torch.no_grad():
        logprobs = logprobs_from_logits(model(input_ids=input_ids).logits[:, :-1], input_ids[:, 1:])
    assert (logprobs - ref_logprobs).abs().max() < 1e-4


def test_without_our_hook_verl_gets_upstreams_patch():
    """The check above fails without install(): upstream leaves the gated norm alone."""
    import importlib

    from liger_kernel.transformers import monkey_patch

    module, name, kwargs = verl_use_liger_call()
    # verl's plugin may already have run install() in this process: put upstream's entry back (restored after)
    monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN["falcon_h1"] = monkey_patch.apply_liger_kernel_to_falcon_h1
    model = tiny_falcon_h1(GROUPED_GEOMETRY, seed=7)
    getattr(importlib.import_module(module), name)(model=model, **kwargs)
    assert "forward" not in model.model.layers[0].mamba.norm.__dict__
    assert model.model.layers[0].feed_forward.forward.__func__.__qualname__ == "LigerFalconH1SwiGLUMLP.forward"


def test_activation_lists_the_installer():
    from verl_falcon_plugin.activation import INSTALLERS

    assert ("Liger kernels for Falcon-H1 behind model.use_liger", "liger_patches.verl_hook:install") in [
        entry[:2] for entry in INSTALLERS
    ]


def test_package_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, liger_patches; print(sorted(m for m in ('torch','triton','liger_kernel') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("hooked", [False, True], ids=["verl_as_is", "hooked"])
def test_verl_fused_kernels_log_probs_include_lm_head_multiplier(hooked, monkeypatch):
    """verl 0.9.1's use_fused_kernels head drops lm_head_multiplier; with our hook it matches HF logits."""
    dense_common = pytest.importorskip("verl.models.transformers.dense_common")
    from verl.utils.torch_functional import logprobs_from_logits

    from liger_patches import verl_hook

    unwrapped = getattr(dense_common.forward_base_model, "__wrapped__", dense_common.forward_base_model)
    monkeypatch.setattr(dense_common, "forward_base_model", unwrapped)  # whatever the plugin did, restored after
    if hooked:
        verl_hook._install_fused_kernels_multiplier()
        verl_hook._install_fused_kernels_multiplier()  # idempotent
        assert dense_common.forward_base_model.__wrapped__ is unwrapped
    model = tiny_falcon_h1(GROUPED_GEOMETRY, seed=8, num_hidden_layers=1)
    model._verl_fused_kernels_backend = "torch"
    input_ids = torch.randint(3, model.config.vocab_size, (1, 10), generator=torch.Generator().manual_seed(1))
    temperature = 0.85
    with torch.no_grad():
        expected = logprobs_from_logits(model(input_ids=input_ids).logits / temperature, torch.roll(input_ids, -1, -1))
        out = dense_common.forward_with_torch_backend(
            model, input_ids=input_ids, return_dict=True, temperature=temperature
        )
    error = (out.log_probs - expected).abs().max().item()
    if hooked:
        assert error < 1e-4
    else:
        assert error > 1e-2  # the upstream bug this hook fixes
