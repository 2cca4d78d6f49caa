"""Run a function right after a module is first imported (a post-import hook).

Activation patches verl, Liger and the SFT trainer. Importing those modules just to
patch them costs seconds in the driver and in every Ray worker, most of which never use
them. A hook instead patches a module the moment its own code has run, before the
statement that imported it continues, so by-name imports of patched attributes (``from
m import f``) see the patched object. A module already imported is hooked at once.

The finder only wraps the loader of the few modules that have hooks; every other import
goes through Python's own machinery untouched. A hook that raises makes the import of its
module raise: a patch that could not be installed never leaves the process running
unpatched.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
from types import ModuleType
from typing import Any, Callable

Hook = Callable[[ModuleType], None]

_HOOKS: dict[str, list[Hook]] = {}
_LOCK = threading.RLock()


class _HookedLoader(importlib.abc.Loader):
    """Delegates to the real loader, then runs the module's hooks."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _run_hooks(module.__name__, module)

    def __getattr__(self, name: str) -> Any:  # get_source, get_code, is_package, resource readers
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _HOOKS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and not isinstance(spec.loader, _HookedLoader):
                    spec.loader = _HookedLoader(spec.loader)
                return spec
        return None


_FINDER = _PostImportFinder()


def _run_hooks(name: str, module: ModuleType) -> None:
    with _LOCK:
        hooks = _HOOKS.pop(name, [])
    for hook in hooks:
        hook(module)


def when_imported(module_name: str, hook: Hook) -> None:
    """Call ``hook(module)`` once ``module_name`` has been imported (now, if it already is)."""
    with _LOCK:
        module = sys.modules.get(module_name)
        if module is None:
            _HOOKS.setdefault(module_name, []).append(hook)
            if _FINDER not in sys.meta_path:
                sys.meta_path.insert(0, _FINDER)
            return
    if _is_initialising(module):
        # its loader was chosen before the hook existed: the hook could never run
        raise RuntimeError(f"cannot hook {module_name}: it is being imported right now (an import cycle?)")
    hook(module)


def pending() -> dict[str, int]:
    """Modules with hooks still waiting for their import, and how many each."""
    with _LOCK:
        return {name: len(hooks) for name, hooks in _HOOKS.items()}


def _is_initialising(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))
