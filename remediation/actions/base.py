"""What every action offers: a parameters model, ``plan``, ``apply`` and ``rollback``.

An action is planned first: ``plan`` reads the current state and returns a JSON-able plan
holding the ``previous`` state, the ``target`` state and the ``blast`` radius (replicas and pods
it would change, namespaces it touches). The plan is stored on the action run *before* anything
changes, so a redelivered task applies the same absolute target (set replicas to 4, never
"add 2" twice) and ``rollback`` restores exactly what was there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from aiops.state import StateDB
    from remediation.kube import Kube
    from remediation.settings import RemediationSettings

__all__ = ["Action", "ActionContext", "ActionParams", "blast"]


class ActionParams(BaseModel):
    """Base of every action's parameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class ActionContext:
    """What an action may use while it runs."""

    settings: RemediationSettings
    state: StateDB
    kube: Kube
    run_id: str = ""
    playbook: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def blast(replicas: int = 0, pods: int = 0, namespaces: list[str] | None = None) -> dict[str, Any]:
    """The blast radius of a plan, checked by the guards before anything changes."""
    return {"replicas": int(replicas), "pods": int(pods), "namespaces": sorted(set(namespaces or []))}


class Action(Protocol):
    """One kind of change. Implementations are stateless; state travels in the plan."""

    name: ClassVar[str]
    Params: ClassVar[type[ActionParams]]

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        """Read the current state; return ``{"previous", "target", "blast", ...}``."""
        ...

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        """Make the target state true (idempotently); return what was done."""
        ...

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        """Restore ``plan["previous"]`` where that is possible; say so where it is not."""
        ...
