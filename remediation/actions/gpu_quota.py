"""``gpu_quota_lend``: lend a lending class's idle GPUs to a borrowing class, or give them back.

For example, while inference queues grow, fine-tuning's idle share moves to inference: the loan is
recorded in the state database and both classes' ResourceQuotas are rewritten from the policy
(``remediation.gpu_quota``). Only idle GPUs move (the lender's GPUs minus what its pods request),
never below the lender's ``min_share`` nor above the borrower's ``max_share``. ``give_back: true``
(a playbook on the alert's resolution) returns the loan; rollback restores the previous loans.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from aiops.errors import PermanentError, RemediationError
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["GpuQuotaLend", "LendParams"]


class LendParams(ActionParams):
    lender: str = Field(min_length=1, description="Class lending idle GPUs (e.g. finetune).")
    borrower: str = Field(min_length=1, description="Class receiving them (e.g. inference).")
    gpus: int | None = Field(None, ge=1, le=100_000, description="At most this many (default: all that may move).")
    give_back: bool = Field(False, description="Return the borrower's loan from the lender instead.")


class _QuotaRefused(PermanentError, RemediationError):
    pass


class GpuQuotaLend:
    name: ClassVar[str] = "gpu_quota_lend"
    Params: ClassVar[type[ActionParams]] = LendParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        from remediation.quota import lend  # the quota module reads guards, which read the actions

        p: LendParams = params
        policy = ctx.settings.gpu_quota
        if not policy.enabled:
            raise _QuotaRefused("gpu_quota_lend: remediation.gpu_quota is not enabled")
        try:
            got = lend(policy, ctx.kube, ctx.state, p.lender, p.borrower, p.gpus, p.give_back)
        except (KeyError, ValueError) as exc:
            raise _QuotaRefused(f"gpu_quota_lend: {exc}") from None
        namespaces = sorted({ns for c in policy.classes if c.name in (p.lender, p.borrower) for ns in c.namespaces})
        return {"previous": {"loans": got["previous"]}, "target": {"loans": got["loans"]}, "moved": got["moved"],
                "blast": {**blast(namespaces=namespaces), "gpus": abs(int(got["moved"]))}}

    def _set(self, state: dict[str, int], ctx: ActionContext) -> dict[str, Any]:
        from remediation.quota import apply_quota, loans, save_loans

        save_loans(ctx.state, state)
        changes = apply_quota(ctx.settings, ctx.kube, ctx.state, f"action:{ctx.run_id or 'gpu_quota_lend'}")
        return {"loans": loans(ctx.state), "changes": [c.describe() for c in changes]}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"moved": plan["moved"], **self._set(plan["target"]["loans"], ctx)}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(plan["previous"]["loans"], ctx)
