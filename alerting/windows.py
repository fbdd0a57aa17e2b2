"""The points of one series for one anomaly rule, kept in sample-time order.

An anomaly rule holds when at least ``points`` of the last ``of`` points of a series score at
or over its ``score``. Points are placed by their sample time, not by arrival: with several
agents the leader's own samples keep coming while an anomaly a standby found is on its way
through the inbox (:mod:`alerting.inbox`), so it arrives after newer points. Beyond the
newest ``of`` points, up to ``LATE_POINTS`` older ones (none more than ``stale_after_s``
older than the newest) are kept, so that such a point still lands where it belongs and the
windows that contain it can be evaluated (:meth:`AlertEngine._anomaly_point
<alerting.engine.AlertEngine>`). A point older than what was kept is refused: its windows
are gone, and it may be one counted before (a row delivered twice).

Examples:
    >>> w = AnomalyWindow(points=2, of=3, score=0.9)
    >>> [w.place(ts, 0.0, 60_000)[0] for ts in (1000, 2000, 3000, 4000)]
    [0, 1, 2, 3]
    >>> w.holds(3), w.place(2000, 0.95, 60_000), w.place(3000, 0.95, 60_000)
    (False, (1, 0.0), (2, 0.0))
    >>> w.holds(3), w.holds(2), w.peak(3)
    (True, True, 0.95)
    >>> w.place(3000, 0.5, 60_000)  # a lower score for a point already there: no change
    (2, 0.95)
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

__all__ = ["AnomalyWindow", "LATE_POINTS"]

LATE_POINTS = 16
"""Points kept beyond a rule's ``of`` for late arrivals: 16 scrape intervals of lag (16 s at a
1 s scrape, 4 min at the usual 15 s), where the inbox adds 0.25 s and a round trip. At 16
bytes a point (two arrays) a full window of ``of`` 5 takes 648 bytes, the 5 tuples it held
before 680."""


class AnomalyWindow:
    """Points (sample time, score) of one series for one anomaly rule, oldest first.

    Args:
        points: hits a window needs (the rule's ``points``).
        of: points in a window (the rule's ``of``).
        score: a point scoring at least this is a hit.
        late: points kept beyond ``of`` for late arrivals.
    """

    __slots__ = ("points", "of", "score", "late", "ts", "sc", "floor_ms")

    def __init__(self, points: int, of: int, score: float, late: int = LATE_POINTS) -> None:
        self.points = points
        self.of = of
        self.score = score
        self.late = late
        self.ts = array("q")  # sample times in ms, ascending; parallel arrays: 16 bytes a point
        self.sc = array("d")
        self.floor_ms: int | None = None  # newest sample time given up: nothing at or before it is placed

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def newest_ms(self) -> int:
        return int(self.ts[-1])

    def place(self, ts_ms: int, score: float, keep_ms: int) -> tuple[int, float | None] | None:
        """Put a point at its sample time (a point already there keeps the higher score).

        Returns its index and the score it had before (None: a new point; equal to ``score``
        or higher: nothing changed), or None when it is older than what is kept. Points more
        than ``keep_ms`` older than the newest go (never the newest ``of``).
        """
        ts, sc = self.ts, self.sc
        if not ts or ts_ms > ts[-1]:  # in order: the single-agent path
            ts.append(ts_ms)
            sc.append(score)
            self._trim(keep_ms)
            return len(ts) - 1, None
        if self.floor_ms is not None and ts_ms <= self.floor_ms:
            return None
        i = bisect_left(ts, ts_ms)
        if ts[i] == ts_ms:
            old = sc[i]
            if score > old:
                sc[i] = score
            return i, old
        ts.insert(i, ts_ms)
        sc.insert(i, score)
        cut = self._trim(keep_ms)
        return None if i < cut else (i - cut, None)

    def _trim(self, keep_ms: int) -> int:
        """Drop what is beyond ``of + late`` points or ``keep_ms`` older than the newest; returns how many."""
        ts = self.ts
        n = len(ts)
        cut = max(0, n - self.of - self.late)
        oldest_kept = ts[-1] - keep_ms
        while cut < n - self.of and ts[cut] < oldest_kept:
            cut += 1
        if cut:
            self.floor_ms = int(ts[cut - 1])
            del ts[:cut]
            del self.sc[:cut]
        return cut

    def hits(self, end: int) -> int:
        """Hits in the window of ``of`` points ending at index ``end`` (fewer at the start)."""
        lo = max(0, end - self.of + 1)
        return sum(1 for s in self.sc[lo:end + 1] if s >= self.score)

    def holds(self, end: int) -> bool:
        return self.hits(end) >= self.points

    def peak(self, end: int) -> float:
        """The highest score in the window ending at ``end``."""
        return max(self.sc[max(0, end - self.of + 1):end + 1])

    def affected(self, i: int) -> range:
        """Indices of the windows that contain the point at ``i`` (up to the newest)."""
        return range(i, min(i + self.of, len(self.ts)))

    def restore(self, last_ms: int, score: float) -> None:
        """Stand-in hits for an alert taken back after a restart: ``points`` hits, the newest
        at ``last_ms`` (its last evaluation); real points placed later push them out."""
        self.ts = array("q", (last_ms - k for k in range(self.points - 1, -1, -1)))
        self.sc = array("d", [score] * self.points)
        self.floor_ms = None
