"""Read contracts between feature packages, which meet only here (docs/ARCHITECTURE.md, "Layers").

One package owns a table; another that needs to know something it records asks through a
``Protocol`` declared here. The owner provides the implementation when it is imported (as its
tables register on :data:`aiops.state.metadata`); the application imports every package at
start (``app/wiring.py``), so in the agent and in a worker the contract is always provided.

:class:`AlertStates`: remediation asks whether an alert fires (a delayed scale-down step is moot
when its alert fired again meanwhile, an approval is stale once its alert resolved); alerting
answers from its ``alerts`` table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiops.state import StateDB

__all__ = ["AlertStates", "provide_alert_states", "alert_states"]


class AlertStates(Protocol):
    """What the platform knows about an alert's current state."""

    def firing_since_ms(self, fingerprint: str) -> int | None:
        """``startsAt`` (ms) of the alert's current firing episode; None if it does not fire now."""
        ...

    def episode(self, fingerprint: str) -> tuple[str, int] | None:
        """The alert's recorded state (``firing``, ``resolved``, ...) and ``startsAt`` (ms) of its
        latest episode; None when the alert was never recorded."""
        ...


_alert_states: Callable[[StateDB], AlertStates] | None = None


def provide_alert_states(factory: Callable[[StateDB], AlertStates]) -> None:
    """Register the implementation (alerting does, on import): ``factory(db)`` reads ``db``."""
    global _alert_states
    _alert_states = factory


def alert_states(db: StateDB) -> AlertStates | None:
    """The registered :class:`AlertStates` over ``db``; None where no package provides one."""
    return None if _alert_states is None else _alert_states(db)
