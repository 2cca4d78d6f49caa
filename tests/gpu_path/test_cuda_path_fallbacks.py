"""``cuda_path`` never fails silently and never raises inside a kernel: it falls back with a logged reason."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from tests.gpu_path.conftest import REPO, requires_kernels

torch = pytest.importorskip("torch")

from verl_falcon_plugin.models.falcon_h1 import cuda_path  # noqa: E402


@pytest.fixture
def on_gpu_with_kernels(monkeypatch):
    """As on a GPU with causal_conv1d importable (the layout checks are pure Python on shapes and strides)."""
    monkeypatch.setattr(cuda_path, "_device_ok", lambda t: True)
    monkeypatch.setattr(cuda_path, "_conv_kernel", lambda: object())
    cuda_path._log_conv_fallback.cache_clear()
    yield
    cuda_path._log_conv_fallback.cache_clear()


def _mixer_like_input(channels: int, length: int = 10) -> "torch.Tensor":
    return torch.cat([torch.randn(1, length, channels - 8), torch.randn(1, length, 8)], dim=-1)


def test_conv_usable_accepts_the_mixer_layout(on_gpu_with_kernels):
    assert cuda_path.conv_usable(_mixer_like_input(24), torch.randn(24, 4), torch.randn(24))


@pytest.mark.parametrize(
    "make_args, reason",
    [
        (lambda: (_mixer_like_input(20), torch.randn(20, 4), torch.randn(20)), "multiple of 8"),
        (lambda: (_mixer_like_input(24), torch.randn(24, 5), torch.randn(24)), "width 5"),
        (lambda: (_mixer_like_input(24), torch.randn(24, 4), torch.randn(24).double()), "bias dtype"),
        (lambda: (_mixer_like_input(24).double(), torch.randn(24, 4), None), "dtypes"),
        (lambda: (torch.randn(1, 10, 25)[..., :24], torch.randn(24, 4), None), "strides"),  # row stride 25
    ],
)
def test_conv_usable_falls_back_with_the_reason_logged_once(on_gpu_with_kernels, caplog, make_args, reason):
    args = make_args()
    with caplog.at_level(logging.WARNING, logger=cuda_path.__name__):
        assert not cuda_path.conv_usable(*args)
        assert not cuda_path.conv_usable(*args)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and reason in warnings[0] and "torch conv" in warnings[0], warnings


def test_cpu_tensors_and_the_switch_take_the_torch_path(monkeypatch):
    x = torch.randn(1, 4, 2, 8)
    assert not cuda_path.scan_usable(x)
    monkeypatch.setattr(cuda_path, "_scan_kernel", lambda: object())
    assert not cuda_path.scan_usable(x)  # not on CUDA
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    assert cuda_path.scan_usable(x)
    monkeypatch.setenv("FALCON_H1R_TORCH_SCAN", "1")
    assert not cuda_path.scan_usable(x)


@pytest.mark.parametrize(
    "heads, per_group, expected",
    [
        (slice(0, 4), 2, slice(0, 2)),  # two whole groups: a view of B/C
        (slice(4, 6), 4, slice(1, 2)),  # part of one group
        (slice(3, 6), 4, [0, 1, 1]),  # a group split across ranks: per-head copies
    ],
)
def test_kernel_group_layout_is_computed_from_python_ints(heads, per_group, expected):
    assert cuda_path.kernel_group_layout(heads, per_group) == expected


@pytest.mark.slow
@requires_kernels
def test_warns_once_naming_the_fix_when_mamba_ssm_lacks_its_cuda_extension():
    """This venv's mamba_ssm is the sdist built without CUDA: exactly what a user with a broken build has."""
    script = (
        "import logging; logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')\n"
        "from verl_falcon_plugin.models.falcon_h1 import cuda_path\n"
        "assert cuda_path._scan_kernel() is None and cuda_path._scan_kernel() is None\n"
        "assert cuda_path._conv_kernel() is None\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING falcon_h1r:")]
    assert len(warnings) == 2, done.stderr  # once for mamba_ssm, once for causal_conv1d
    assert "mamba_ssm is installed but its CUDA kernels do not import" in warnings[0]
    assert "selective_scan_cuda" in warnings[0] and "--no-cache-dir" in warnings[0]
    assert "causal_conv1d_cuda" in warnings[1]
