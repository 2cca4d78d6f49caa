"""verl's ``model.use_liger=True`` on the cpu platform: Liger under the interpreter shim, or off with a WARNING."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("liger_kernel")

from liger_patches import cpu  # noqa: E402


def test_without_the_interpreter_use_liger_is_switched_off_with_a_warning(monkeypatch, caplog) -> None:
    calls = []
    monkeypatch.setattr(cpu, "interpreting", lambda: False)
    guarded = cpu._guarded(lambda **kwargs: calls.append(kwargs))
    with caplog.at_level(logging.WARNING, logger="liger_patches.cpu"):
        assert guarded(model="m", swiglu=True) is None
    assert calls == []
    assert "use_liger=True is IGNORED" in caplog.text


def test_under_the_interpreter_the_shim_is_applied_then_liger(monkeypatch) -> None:
    order = []
    monkeypatch.setattr(cpu, "interpreting", lambda: True)
    monkeypatch.setattr(cpu, "install_interpreter_shim", lambda: order.append("shim"))
    guarded = cpu._guarded(lambda **kwargs: order.append(("liger", kwargs)))
    guarded(model="m")
    assert order == ["shim", ("liger", {"model": "m"})]


def test_the_shim_refuses_to_run_outside_the_interpreter(monkeypatch) -> None:
    monkeypatch.setattr(cpu, "interpreting", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        cpu.install_interpreter_shim()
