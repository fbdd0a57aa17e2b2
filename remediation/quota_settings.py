"""The ``gpu_quota`` section: GPU pools shared by workload classes by priority.

Example (60 / 30 / 10 % of a 40-GPU pool; fine-tuning may lend its idle share to inference)::

    gpu_quota:
      pool_gpus: 40
      classes:
        - {name: inference, namespaces: [inference], share: 0.6, priority: 1000000, borrow: true,
           max_share: 0.9}
        - {name: finetune, namespaces: [training], share: 0.3, priority: 1000, lend: true, min_share: 0.1}
        - {name: preprocess, namespaces: [batch], share: 0.1, priority: 100}
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from aiops.config import Section

__all__ = ["GpuQuotaSettings", "WorkloadClass"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class WorkloadClass(Section):
    """A class of workloads (inference, fine-tuning, preprocessing) and its share of the pool."""

    name: str = Field(description="Class name (a DNS label: the PriorityClass is aiops-gpu-<name>).")
    namespaces: list[str] = Field(min_length=1, description="Namespaces whose pods belong to the class.")
    share: float = Field(gt=0, le=1, description="Guaranteed share of the pool, 0..1.")
    priority: int = Field(0, ge=-2_147_483_648, le=1_000_000_000, description="PriorityClass value "
                          "(higher preempts lower).")
    lend: bool = Field(False, description="Its idle GPUs may be lent to borrowing classes.")
    borrow: bool = Field(False, description="May borrow idle GPUs of lending classes.")
    min_share: float | None = Field(None, ge=0, le=1, description="Lending never takes it below this share.")
    max_share: float | None = Field(None, gt=0, le=1, description="Borrowing never takes it above this share.")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not _NAME.match(v) or len(v) > 50:
            raise ValueError(f"{v!r} must be a lower-case DNS label of at most 50 characters")
        return v


class GpuQuotaSettings(Section):
    """GPU shares per workload class, made real as PriorityClasses and per-namespace ResourceQuotas."""

    enabled: bool = Field(False, description="Export use versus share per class and allow quota plan/apply.")
    pool_gpus: int = Field(0, ge=0, le=1_000_000, description="GPUs in the pool the shares divide.")
    resource: str = Field("nvidia.com/gpu", description="The extended resource the quotas limit.")
    quota_name: str = Field("aiops-gpu-quota", description="Name of the ResourceQuota in each namespace.")
    classes: list[WorkloadClass] = Field(default_factory=list, description="Workload classes and their shares.")
    interval_s: float = Field(30.0, gt=0, description="Seconds between two use-versus-share readings.")

    @model_validator(mode="after")
    def _consistent(self) -> GpuQuotaSettings:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"classes: duplicate class names in {names}")
        seen: dict[str, str] = {}
        for c in self.classes:
            for ns in c.namespaces:
                if ns in seen:
                    raise ValueError(f"classes: namespace {ns!r} is in both {seen[ns]!r} and {c.name!r}")
                seen[ns] = c.name
        total = sum(c.share for c in self.classes)
        if total > 1.0 + 1e-9:
            raise ValueError(f"classes: shares add up to {total:g}, more than the whole pool (1)")
        return self
