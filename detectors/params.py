"""Parameter checks of the detectors: values validated in ``__init__`` with a message naming them.

Counts of points (``window``, ``refractory``, ``seasonal_period``, ...) may also be given as
durations (``"6h"``, ``"1d"``); :func:`resolve_durations` converts them with the series'
sampling interval before the detector is built (replay and the live agent know the interval),
so the same configuration means the same time span on 1-minute and on 5-minute data.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from aiops.config import parse_duration_s
from aiops.errors import DetectorError

__all__ = [
    "FloatArray",
    "as_values",
    "check_choice",
    "check_float",
    "check_int",
    "check_optional_int",
    "is_duration",
    "resolve_durations",
]

FloatArray = npt.NDArray[np.float64]


def is_duration(value: Any) -> bool:
    """True for a duration text such as ``"6h"`` or ``"1h30m"`` (not for a bare number)."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
        return False
    except ValueError:
        pass
    try:
        parse_duration_s(value)
    except ValueError:
        return False
    return True


def check_optional_int(owner: str, name: str, value: Any, minimum: int) -> int | None:
    """``None``, or ``value`` checked as by :func:`check_int`."""
    return None if value is None else check_int(owner, name, value, minimum)


def check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; raise a DetectorError naming it."""
    if is_duration(value):
        raise DetectorError(f"{owner}: {name} {value!r} is a duration; it needs the series' sampling interval "
                            "(replay and the live agent convert it), or give a number of points")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DetectorError(f"{owner}: {name} must be an integer >= {minimum} (points) or a duration like '6h', "
                            f"got: {value!r}")
    return int(value)


def check_float(owner: str, name: str, value: Any, low: float, high: float, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as float if it lies in the interval; raise a DetectorError naming it."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    ok = not math.isnan(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lb, hb = "(" if low_open else "[", ")" if high_open else "]"
        raise DetectorError(f"{owner}: {name} must be a number in {lb}{low}, {high}{hb}, got: {value!r}")
    return v


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise a DetectorError naming it."""
    if value not in choices:
        raise DetectorError(f"{owner}: {name} must be one of {list(choices)}, got: {value!r}")
    return value


def as_values(values: Any, owner: str, *, ndim: tuple[int, ...] = (1,)) -> FloatArray:
    """Values as a float64 array (a copy is never needed: we only read it)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{owner}: values must be numbers, got: {str(exc)[:120]}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim not in ndim:
        raise DetectorError(f"{owner}: values must have {' or '.join(map(str, ndim))} dimension(s), "
                            f"got shape {arr.shape}")
    return arr


def _to_points(owner: str, name: str, value: Any, interval_s: float | None) -> Any:
    if is_duration(value):
        if interval_s is None or not interval_s > 0:
            raise DetectorError(f"{owner}: {name} {value!r} is a duration, but the series' sampling interval "
                                "is unknown (fewer than two timestamps); give a number of points")
        return max(1, round(parse_duration_s(value) / interval_s))
    if isinstance(value, Mapping):
        return {k: _to_points(owner, f"{name}.{k}", v, interval_s) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_points(owner, f"{name}[{i}]", v, interval_s) for i, v in enumerate(value)]
    return value


def resolve_durations(cls: type[Any], params: Mapping[str, Any], interval_s: float | None) -> dict[str, Any]:
    """``params`` with every duration text (``"6h"``) turned into points at ``interval_s`` seconds.

    Nested values are resolved too (an ensemble's members' parameters). Numbers stay as given:
    an explicit count of points is never rescaled.

    Examples:
        >>> class D:
        ...     def __init__(self, window=30, name="x"): ...
        >>> resolve_durations(D, {"window": "6h"}, 300.0)
        {'window': 72}

    Raises:
        DetectorError: a duration where the interval is unknown.
    """
    owner = str(getattr(cls, "name", cls.__name__))
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: (_to_points(owner, k, v, interval_s) if k in known else v) for k, v in params.items()}
