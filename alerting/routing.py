"""The routing tree, Alertmanager's: matchers, child routes, ``continue``, group timers.

A route matches an alert when all its matchers do. Children are tried in order; the first
matching child ends the search unless it has ``continue: true``. When no child matches, the
route itself is the match. Children inherit ``receiver``, ``group_by`` and the three timers
from their parent unless they set them.

Examples:
    >>> from alerting.matchers import parse_matchers
    >>> root = Route(receiver="default", routes=(
    ...     Route(receiver="pager", matchers=tuple(parse_matchers(['severity="critical"'])), continue_=True),
    ...     Route(receiver="team-db", matchers=tuple(parse_matchers(['service="db"']))),
    ... )).finalise()
    >>> [r.receiver for r in root.match({"severity": "critical", "service": "db"})]
    ['pager', 'team-db']
    >>> [r.receiver for r in root.match({"severity": "info"})]
    ['default']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from aiops.model import Labels, Matcher
from alerting.matchers import format_matcher, matches_all

__all__ = ["Route", "GROUP_BY_ALL"]

GROUP_BY_ALL = ("...",)  # Alertmanager's special value: group by every label (no grouping)


@dataclass(frozen=True, slots=True)
class Route:
    """One node of the routing tree; times in seconds. ``None`` means "inherit"."""

    receiver: str | None = None
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] | None = None
    group_wait_s: float | None = None
    group_interval_s: float | None = None
    repeat_interval_s: float | None = None
    continue_: bool = False
    routes: tuple[Route, ...] = ()
    path: str = "{}"

    def finalise(self, parent: Route | None = None) -> Route:
        """Fill inherited values down the tree (root defaults are Alertmanager's) and name paths."""
        base = parent or Route(receiver="", group_by=(), group_wait_s=30.0, group_interval_s=300.0,
                               repeat_interval_s=4 * 3600.0)
        me = dataclasses.replace(
            self,
            receiver=self.receiver if self.receiver is not None else base.receiver,
            group_by=self.group_by if self.group_by is not None else base.group_by,
            group_wait_s=self.group_wait_s if self.group_wait_s is not None else base.group_wait_s,
            group_interval_s=self.group_interval_s if self.group_interval_s is not None else base.group_interval_s,
            repeat_interval_s=self.repeat_interval_s if self.repeat_interval_s is not None else base.repeat_interval_s,
            path="{}" if parent is None else
            f"{parent.path}/{{{','.join(format_matcher(m) for m in self.matchers)}}}",
        )
        kids = []
        for i, child in enumerate(self.routes):
            done = child.finalise(me)
            kids.append(dataclasses.replace(done, path=f"{done.path}#{i}"))  # siblings may share matchers
        return dataclasses.replace(me, routes=tuple(kids))

    def match(self, labels: Mapping[str, str] | Labels) -> list[Route]:
        """The routes ``labels`` end up at (depth first, honouring ``continue``)."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            found.extend(got)
            if got and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Labels) -> Labels:
        """The labels an alert is grouped by on this route."""
        if self.group_by == GROUP_BY_ALL:
            return labels
        keep = set(self.group_by or ())
        return tuple((k, v) for k, v in labels if k in keep)

    def receivers(self) -> set[str]:
        """Every receiver name used in the tree."""
        out = {self.receiver or ""}
        for r in self.routes:
            out |= r.receivers()
        return out
