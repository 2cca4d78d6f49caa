"""Fail the build loudly when pip installed anything but the pinned CPU torch."""

import sys

import torch

EXPECTED = "2.13.0+cpu"

if torch.__version__ != EXPECTED or torch.version.cuda is not None:
    sys.exit(
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) is installed, expected {EXPECTED}: "
        "a dependency pulled another torch. Pin it with -c constraints/torch.txt."
    )
print(f"torch {torch.__version__}: CPU build, as pinned")
