"""Run Liger's Triton kernels on CPU through the Triton interpreter, and keep patches test-local.

Triton 3.9's interpreter has two gaps that Liger's RMSNorm and SwiGLU kernels
hit (compiled GPU Triton has neither):

* float scalar arguments reach the kernel as Python floats, so ``eps.to(...)``
  raises ``'float' object has no attribute 'to'``: the shim wraps them as fp32
  scalars, as the compiler specialises them;
* ``triton.language.extra.libdevice.rsqrt`` has no interpreter implementation:
  the shim routes Liger's module-level ``rsqrt`` to ``tl.math.rsqrt``.

The shim is ``liger_patches.cpu.install_interpreter_shim`` (product-side, interpreter only; verl's
cpu platform applies it too). ``TRITON_INTERPRET`` must
be set before ``@triton.jit`` runs (it picks the interpreter at decoration), so
it is set at the top of this file, before anything imports Liger.
"""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")  # torch does not import triton: the switch below is still in time
ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

PURGED_PREFIXES = ("triton", "liger_kernel", "liger_patches")


def _decorated_for_the_interpreter() -> bool:
    import triton.language as tl

    return type(tl.standard.sum).__name__ == "InterpretedFunction"


if not ON_GPU and "triton" in sys.modules and not _decorated_for_the_interpreter():
    # Another test module imported triton first (e.g. through verl's plugin loading liger_kernel), so its
    # kernels were decorated for a GPU this machine lacks. Re-import them for the interpreter; modules that
    # kept references to the old objects could not have launched them on CPU anyway.
    # triton._C (the compiled extension) stays: initialising it twice aborts the process
    for name in [m for m in sys.modules if m.split(".")[0] in PURGED_PREFIXES and not m.startswith("triton._C")]:
        del sys.modules[name]

pytest.importorskip("triton")
pytest.importorskip("liger_kernel")

import triton  # noqa: E402

INTERPRETING = bool(triton.knobs.runtime.interpret)


def _install_interpreter_shim() -> None:
    from liger_patches.cpu import install_interpreter_shim  # product-side, applied only under the interpreter

    install_interpreter_shim()


if INTERPRETING:
    _install_interpreter_shim()


def _assert_interpreter_active() -> None:
    from liger_kernel.ops.swiglu import _swiglu_forward_kernel

    if not ON_GPU and type(_swiglu_forward_kernel).__name__ != "InterpretedFunction":
        pytest.fail("Liger's kernels are decorated for a GPU although TRITON_INTERPRET=1: run tests/liger alone")


@pytest.fixture(autouse=True)
def restore_falcon_h1_patch_targets():
    """Undo class-level patching after each test: transformers' module is process-global."""
    _assert_interpreter_active()
    from liger_kernel.transformers import monkey_patch
    from transformers.loss import loss_utils
    from transformers.models.falcon_h1 import modeling_falcon_h1 as modeling

    names = ("apply_rotary_pos_emb", "FalconH1RMSNorm", "FalconH1RMSNormGated", "FalconH1MLP")
    saved = {name: getattr(modeling, name) for name in names}
    saved_forward = modeling.FalconH1ForCausalLM.forward
    saved_ce = loss_utils.nn.functional.cross_entropy
    saved_table = dict(monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN)
    yield
    for name, value in saved.items():
        setattr(modeling, name, value)
    modeling.FalconH1ForCausalLM.forward = saved_forward
    loss_utils.nn.functional.cross_entropy = saved_ce
    monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN.clear()
    monkey_patch.MODEL_TYPE_TO_APPLY_LIGER_FN.update(saved_table)
