"""Package exports that load on first use (PEP 562), so importing a package stays cheap.

``import detectors.settings`` (every CLI command assembles the settings) must not import torch,
scipy or numpy through the package's ``__init__``; each feature package therefore names its
exports and where they live, and lets :func:`lazy_exports` import each one when it is first
looked up.

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
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str | tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a name to its module (the same
    name there) or to ``(module, attribute)``; the value is cached in the package once imported."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(module), attribute)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
