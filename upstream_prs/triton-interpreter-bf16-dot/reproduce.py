"""The reproduction, run as ``TRITON_INTERPRET=1 python reproduce.py``: prints the largest error of a 16x16 ``tl.dot``
of small integers against ``a.float() @ b.float()``, per dtype, as JSON (0.0 is right; Triton 3.9 gives ~1e10 for bf16).
"""

import json

import torch
import triton
import triton.language as tl


@triton.jit
def dot(a_ptr, b_ptr, c_ptr, N: tl.constexpr):
    r = tl.arange(0, N)
    a, b = tl.load(a_ptr + r[:, None] * N + r[None, :]), tl.load(b_ptr + r[:, None] * N + r[None, :])
    tl.store(c_ptr + r[:, None] * N + r[None, :], tl.dot(a, b))


errors = {}
for dtype in (torch.bfloat16, torch.float16):
    a, b = (torch.randint(-2, 3, (16, 16), generator=torch.Generator().manual_seed(s)).to(dtype) for s in (0, 1))
    c = torch.empty(16, 16)
    dot[(1,)](a, b, c, N=16)
    errors[str(dtype)] = (c - a.float() @ b.float()).abs().max().item()
print(json.dumps(dict(errors=errors, triton=triton.__file__, kernel=type(dot).__name__)))
