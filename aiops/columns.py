"""Samples as columns: one scrape's series, timestamps and values as three parallel arrays.

A scrape of 100,000 series would be 100,000 :class:`~aiops.model.Sample` objects, each built,
validated, hashed into the store's id map and dropped again. :class:`SampleColumns` carries the
same data as a tuple of series (one per sample) plus an int64 and a float64 array, and is a
read-only ``Sequence[Sample]``: code written for lists of samples (bus subscribers, tests) still
works, and builds a :class:`Sample` only for the elements it touches.

The store resolves series ids of a ``SampleColumns`` once per distinct ``series`` tuple *object*
(see :meth:`aiops.store.SqliteSeriesStore.append`): a scraper that hands the same tuple again
when a target exports the same series in the same order (the usual case) gets its ids from a
cache instead of hashing every series again.

Examples:
    >>> from aiops.model import Series
    >>> cpu = Series.of("cpu", host="a")
    >>> cols = SampleColumns.of([cpu, cpu], [1000, 2000], [0.5, float("nan")])
    >>> len(cols), cols[0].value, cols[-1].ts_ms
    (2, 0.5, 2000)
    >>> [s.ts_ms for s in concat_samples([cols, [cols[0]]])]
    [1000, 2000, 1000]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import numpy.typing as npt

from aiops.errors import InputError
from aiops.model import Sample, Series

__all__ = ["SampleColumns", "concat_samples"]


@dataclass(frozen=True, slots=True, eq=False)
class SampleColumns(Sequence[Sample]):
    """Samples as columns: ``series[i]`` had ``values[i]`` at ``ts_ms[i]`` (UTC ms).

    Build it with :meth:`of` (which checks lengths and dtypes); the arrays must not be
    modified afterwards.
    """

    series: tuple[Series, ...]
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    @classmethod
    def of(
        cls,
        series: Sequence[Series],
        ts_ms: Sequence[int] | npt.NDArray[np.int64],
        values: Sequence[float] | npt.NDArray[np.float64],
    ) -> SampleColumns:
        """Columns from parallel sequences.

        Raises:
            InputError: lengths differ, or a timestamp or value is not a number.
        """
        series_t = series if isinstance(series, tuple) else tuple(series)
        try:
            ts = np.asarray(ts_ms, dtype=np.int64)
            vals = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InputError(f"sample columns: bad timestamp or value: {exc}") from None
        if not (ts.ndim == vals.ndim == 1 and ts.shape[0] == vals.shape[0] == len(series_t)):
            raise InputError(f"sample columns: {len(series_t)} series, {ts.size} timestamps and "
                             f"{vals.size} values; expected one of each per sample")
        return cls(series_t, ts, vals)

    def __len__(self) -> int:
        return len(self.series)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> SampleColumns: ...

    def __getitem__(self, index: int | slice) -> Sample | SampleColumns:
        if isinstance(index, slice):
            return SampleColumns(self.series[index], self.ts_ms[index], self.values[index])
        return Sample(self.series[index], int(self.ts_ms[index]), float(self.values[index]))

    def __iter__(self) -> Iterator[Sample]:
        # tolist() converts in C: much cheaper than indexing numpy scalars one by one
        for series, ts, value in zip(self.series, self.ts_ms.tolist(), self.values.tolist(), strict=True):
            yield Sample(series, ts, value)

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same samples (``cols == []`` for an empty scrape)."""
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable-looking sequence semantics, like list

    def __repr__(self) -> str:
        return f"SampleColumns({len(self)} samples)"


def concat_samples(parts: Iterable[Sequence[Sample]]) -> SampleColumns:
    """One :class:`SampleColumns` from columns and/or plain sample sequences, in order."""
    series: list[Series] = []
    ts: list[npt.NDArray[np.int64]] = []
    vals: list[npt.NDArray[np.float64]] = []
    for part in parts:
        if isinstance(part, SampleColumns):
            series.extend(part.series)
            ts.append(part.ts_ms)
            vals.append(part.values)
        elif part:
            cols = SampleColumns.of([s.series for s in part], [s.ts_ms for s in part], [s.value for s in part])
            series.extend(cols.series)
            ts.append(cols.ts_ms)
            vals.append(cols.values)
    if not ts:
        return SampleColumns((), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
    return SampleColumns(tuple(series), np.concatenate(ts), np.concatenate(vals))
