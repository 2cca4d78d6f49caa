"""Liger on a machine without a GPU: the Triton-interpreter shim, or Liger switched off.

Liger's kernels are Triton; on CPU they run only under Triton's interpreter
(``TRITON_INTERPRET=1``, set before Triton is imported), slowly. Triton 3.9's
interpreter has two gaps that Liger's RMSNorm and SwiGLU kernels hit (compiled GPU
Triton has neither):

* float scalar arguments reach the kernel as Python floats, so ``eps.to(...)`` raises
  ``'float' object has no attribute 'to'`` (``liger_kernel/ops/rms_norm.py:124``): the
  shim wraps them as fp32 scalars, as the compiler specialises them;
* ``triton.language.extra.libdevice.rsqrt`` has no interpreter implementation: the shim
  routes Liger's module-level ``rsqrt`` to ``tl.math.rsqrt``.

:func:`install_interpreter_shim` applies the shim and only ever under the interpreter.
:func:`guard_use_liger_on_cpu` is what verl's cpu platform installs: verl's
``model.use_liger=True`` then applies Liger with the shim under the interpreter, and
otherwise is switched off with a WARNING that says so (instead of crashing on the
first kernel launch).
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, Callable

logger = logging.getLogger(__name__)

LIGER_MODULES_WITH_LIBDEVICE_RSQRT = ("liger_kernel.ops.rms_norm",)
_FLAG = "_falcon_h1r_shim"


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1`` before Triton was imported)."""
    import triton

    return bool(triton.knobs.runtime.interpret)


def install_interpreter_shim() -> list[str]:
    """Close the interpreter gaps above; idempotent. Refuses to run outside the interpreter."""
    if not interpreting():
        raise RuntimeError("the Liger interpreter shim applies only under TRITON_INTERPRET=1 (set before Triton loads)")
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter._implicit_cvt
    if not getattr(original, _FLAG, False):

        def implicit_cvt(arg: Any) -> Any:
            if isinstance(arg, float):
                handle = interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32)
                return tl.tensor(handle, tl.float32)
            return original(arg)

        setattr(implicit_cvt, _FLAG, True)
        interpreter._implicit_cvt = implicit_cvt

    def rsqrt(x: Any) -> Any:
        # looked up at call time: the interpreter swaps tl.math's builtins only while a kernel runs
        return tl.math.rsqrt(x)

    for name in LIGER_MODULES_WITH_LIBDEVICE_RSQRT:
        importlib.import_module(name).rsqrt = rsqrt
    return ["Triton interpreter: float kernel arguments as fp32 scalars, libdevice.rsqrt -> tl.math.rsqrt"]


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def apply_on_cpu(*args: Any, **kwargs: Any) -> Any:
        if not interpreting():
            logger.warning(
                "falcon_h1r: Liger's Triton kernels need a GPU; on the cpu platform model.use_liger=True is "
                "IGNORED and the model runs without Liger (set TRITON_INTERPRET=1 before launch to run the "
                "kernels in Triton's interpreter, slowly)"
            )
            return None
        install_interpreter_shim()
        return original(*args, **kwargs)

    setattr(apply_on_cpu, _FLAG, True)
    return apply_on_cpu


def guard_use_liger_on_cpu() -> list[str]:
    """Wrap Liger's ``_apply_liger_kernel_to_instance`` (what verl's ``use_liger`` calls) for CPU; idempotent."""
    monkey_patch = importlib.import_module("liger_kernel.transformers.monkey_patch")
    if not getattr(monkey_patch._apply_liger_kernel_to_instance, _FLAG, False):
        monkey_patch._apply_liger_kernel_to_instance = _guarded(monkey_patch._apply_liger_kernel_to_instance)
    return ["Liger on the cpu platform: interpreter shim under TRITON_INTERPRET=1, else use_liger off with a WARNING"]
