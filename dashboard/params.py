"""A detector's parameter schema, read from its constructor, for generated form widgets.

Like ``get_params()`` (scikit-learn, pyod), the constructor's keyword arguments *are* the
parameters: their type hints and defaults give the widget (slider, select, toggle, number),
so a new detector gets a tuning form without dashboard code. A class may narrow a string
parameter to choices with a ``param_choices`` class attribute (``{"method": ("median", "stl")}``).
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["ParamSpec", "param_specs", "yaml_snippet"]

# Choices of string parameters of the registered detectors (until they declare param_choices).
_KNOWN_CHOICES: dict[str, tuple[str, ...]] = {"method": ("median", "stl"), "direction": ("up", "down"),
                                              "combine": ("max", "mean")}
_SKIP = {"members", "threads"}  # structured or machine-specific: not tuned from a form


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One constructor parameter as a widget.

    Attributes:
        name: the keyword.
        kind: ``bool``, ``int``, ``float``, ``choice`` or ``str``.
        default: the constructor's default (None: off).
        optional: None is allowed (the widget gets an on/off toggle).
        low, high, step: slider bounds for numbers.
        choices: for ``choice``.
    """

    name: str
    kind: str
    default: Any
    optional: bool = False
    low: float = 0.0
    high: float = 1.0
    step: float = 1.0
    choices: tuple[str, ...] = ()


def _base_type(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
    return hint, False


def param_specs(cls: type[Any]) -> list[ParamSpec]:
    """The tunable parameters of detector class ``cls``, in signature order.

    Examples:
        >>> from detectors import registry
        >>> [p.kind for p in param_specs(registry.get("zscore"))][:4]
        ['int', 'float', 'int', 'bool']
    """
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an unresolvable hint: fall back to the defaults' types
        hints = {}
    choices_of: dict[str, tuple[str, ...]] = {**_KNOWN_CHOICES, **dict(getattr(cls, "param_choices", {}) or {})}
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _SKIP:
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        hint, optional = _base_type(hints.get(p.name, type(default) if default is not None else str))
        optional = optional or default is None
        if hint is bool:
            out.append(ParamSpec(p.name, "bool", bool(default)))
        elif hint is int:
            base = int(default) if default is not None else 10
            high = 1_000_000 if p.name == "seed" else max(4 * base, 10)
            out.append(ParamSpec(p.name, "int", default, optional, low=0 if base == 0 else 1, high=high, step=1))
        elif hint is float:
            d = float(default) if default is not None else 0.0
            if p.name == "threshold" and 0.5 <= d <= 1:
                out.append(ParamSpec(p.name, "float", default, optional, low=0.5, high=1.0, step=0.0005))
            elif 0 <= d <= 1:
                out.append(ParamSpec(p.name, "float", default, optional, low=0.0, high=1.0, step=0.01))
            else:
                out.append(ParamSpec(p.name, "float", default, optional, low=0.0, high=max(4 * d, 10.0),
                                     step=max(d / 100, 0.01)))
        elif hint is str and p.name in choices_of:
            out.append(ParamSpec(p.name, "choice", default, optional, choices=tuple(choices_of[p.name])))
        elif hint is str:
            out.append(ParamSpec(p.name, "str", default, optional))
    return out


def yaml_snippet(name: str, detector: str, selector: str, params: dict[str, Any], threshold: float | None) -> str:
    """The ``detect.detectors`` entry for these settings, ready to paste into aiops.yaml."""
    import yaml

    entry: dict[str, Any] = {"name": name, "detector": detector, "selector": selector or "<your selector>",
                             "params": {k: v for k, v in params.items() if v is not None}}
    if threshold is not None:
        entry["threshold"] = threshold
    return yaml.safe_dump({"detect": {"detectors": [entry]}}, sort_keys=False)
