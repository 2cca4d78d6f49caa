"""Post-import hooks: the mechanism that lets activation patch modules only when they are imported."""

from __future__ import annotations

import sys
import textwrap

import pytest

from verl_falcon_plugin import import_hooks


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("h12_hooked")]:
        del sys.modules[name]


def write(directory, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))


def test_hook_runs_after_the_module_body_and_before_by_name_imports(module_dir) -> None:
    write(module_dir, "h12_hooked_a", "def f():\n    return 'original'\n")
    write(module_dir, "h12_hooked_user", "from h12_hooked_a import f\n")
    seen = []

    def patch(module):
        seen.append(module.__name__)
        module.f = lambda: "patched"

    import_hooks.when_imported("h12_hooked_a", patch)
    assert "h12_hooked_a" not in sys.modules  # arming imports nothing
    import h12_hooked_user

    assert seen == ["h12_hooked_a"]
    assert h12_hooked_user.f() == "patched"  # the importer's by-name copy is the patched one
    assert "h12_hooked_a" not in import_hooks.pending()


def test_hook_on_an_imported_module_runs_at_once(module_dir) -> None:
    write(module_dir, "h12_hooked_b", "x = 1\n")
    import h12_hooked_b

    import_hooks.when_imported("h12_hooked_b", lambda module: setattr(module, "x", 2))
    assert h12_hooked_b.x == 2


def test_a_failing_hook_fails_the_import(module_dir) -> None:
    """Negative control of the fail-loud rule: an uninstallable patch never leaves the module in use unpatched."""
    write(module_dir, "h12_hooked_c", "x = 1\n")

    def broken(module):
        raise AttributeError("verl moved it")

    import_hooks.when_imported("h12_hooked_c", broken)
    with pytest.raises(AttributeError, match="verl moved it"):
        import h12_hooked_c  # noqa: F401
