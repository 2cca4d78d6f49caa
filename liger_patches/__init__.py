"""Liger-Kernel fused kernels applied to Falcon-H1, exact with every µP multiplier."""
