"""The detector registry: short stable names to classes, imported lazily.

A detector module registers its class with :func:`register` when imported. Known names map to
modules here, so ``create("lstm")`` imports torch only when an LSTM is asked for, and a module
another engineer adds later (``ensemble``) is found by name without this file importing it.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, TypeVar

from aiops.detector import Detector
from aiops.errors import DetectorError

__all__ = ["available", "create", "get", "register"]

# name -> module that registers it on import
_MODULES: dict[str, str] = {
    "zscore": "detectors.zscore",
    "iforest": "detectors.iforest",
    "lstm": "detectors.lstm",
    "seasonal": "detectors.seasonal",
    "forecast": "detectors.forecast",
    "ensemble": "detectors.ensemble",
    "profile": "detectors.profile",
}
_CLASSES: dict[str, type[Any]] = {}

T = TypeVar("T")


def register(cls: type[T]) -> type[T]:
    """Class decorator: make ``cls`` creatable by its ``name`` class attribute."""
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise DetectorError(f"register: {cls.__name__} needs a non-empty class attribute 'name'")
    _CLASSES[name] = cls
    return cls


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """Registered names plus known names whose module exists (without importing them)."""
    names = set(_CLASSES) | {n for n, m in _MODULES.items() if _module_exists(m)}
    return sorted(names)


def get(name: str) -> type[Any]:
    """The class registered under ``name``, importing its module on first use."""
    if name not in _CLASSES and name in _MODULES and _module_exists(_MODULES[name]):
        importlib.import_module(_MODULES[name])
    try:
        return _CLASSES[name]
    except KeyError:
        raise DetectorError(f"unknown detector {name!r}; available: {', '.join(available())}") from None


def create(name: str, **params: Any) -> Detector:
    """A new detector ``name`` with constructor ``params``; bad names and parameters raise DetectorError.

    Examples:
        >>> create("zscore", window=10).get_params()["window"]
        10
    """
    cls = get(name)
    try:
        det: Detector = cls(**params)
    except TypeError as exc:
        raise DetectorError(f"{name}: bad parameters {sorted(params)}: {exc}") from exc
    return det
