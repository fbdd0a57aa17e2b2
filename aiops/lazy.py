"""Package exports that load on first use (PEP 562), so importing a package stays cheap.

``import detectors.settings`` (every CLI command assembles the settings) must not import torch,
scipy or numpy through the package's ``__init__``; each feature package therefore names its
exports and where they live, and lets :func:`lazy_exports` import each one when it is first
looked up.

An export may share its name with a submodule (``rca.localize``, the function, lives in
``rca/localize.py``). Python binds a submodule onto its package when it is first imported,
which would shadow the export; the package's module class puts the export back, as an eager
``from rca.localize import localize`` in ``__init__`` did.

Examples:
    >>> import types, sys
    >>> pkg = types.ModuleType("demo_pkg"); sys.modules["demo_pkg"] = pkg
    >>> pkg.__getattr__ = lazy_exports("demo_pkg", {"dumps": "json", "loads_json": ("json", "loads")})
    >>> pkg.dumps([1]), pkg.loads_json("[2]"), "dumps" in vars(pkg)
    ('[1]', [2], True)
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]

Exports = Mapping[str, "str | tuple[str, str]"]


def _target(exports: Exports, name: str) -> tuple[str, str]:
    target = exports[name]
    return (target, name) if isinstance(target, str) else target


class _ExportingPackage(types.ModuleType):
    """A package module whose lazy exports win over same-named submodules bound by the import system."""

    def __setattr__(self, name: str, value: Any) -> None:
        exports: Exports = self.__dict__.get("_lazy_exports") or {}
        if name in exports and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
            module, attribute = _target(exports, name)
            value = getattr(value if module == value.__name__ else importlib.import_module(module), attribute)
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Exports) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a name to its module (the same
    name there) or to ``(module, attribute)``; the value is cached in the package once imported."""
    pkg = sys.modules[package]
    if type(pkg) is types.ModuleType:
        pkg.__class__ = _ExportingPackage
    pkg.__dict__["_lazy_exports"] = exports

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = _target(exports, name)
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
