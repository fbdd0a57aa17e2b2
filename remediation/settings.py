"""The ``remediation`` section of the settings (playbooks, guards, Celery).

Declared here, assembled into the one settings model by the application (``app/settings.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from aiops.config import Duration, Section
from remediation.quota_settings import GpuQuotaSettings

__all__ = ["RemediationSettings"]


class RemediationSettings(Section):
    """Playbooks, guards and the Celery execution of remediation actions (see docs/remediation.md)."""

    broker_url: SecretStr | None = Field(
        None, description="Celery broker (redis://... or amqp://...); none runs tasks in-process in the agent.")
    result_backend: SecretStr | None = Field(
        None, description="Celery result backend; default: the broker when it is Redis, else none.")
    queue: str = Field("aiops-remediation", min_length=1, description="Celery queue the actions travel on.")
    playbooks: list[Path] = Field(default_factory=list, description="Playbook YAML files or folders.")
    dry_run: bool = Field(False, description="Plan and record actions, change nothing.")
    kill_switch: bool = Field(False, description="Refuse every action (also switchable at run time via the API).")
    allow_commands: bool = Field(False, description="Allow playbooks to run local commands.")
    http_allowed_hosts: list[str] = Field(default_factory=list, description="Hosts (host or host:port, shell "
                                          "patterns) http actions may call; empty: any host written in a playbook.")
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file for Kubernetes actions; none: in-cluster, else ~/.kube/config.")
    kube_context: str | None = Field(None, description="kubeconfig context to use (default: the current one).")
    request_timeout_s: Duration = Field(10.0, gt=0, description="Timeout of one Kubernetes or HTTP call.")
    max_retries: int = Field(5, ge=0, le=100, description="Retries of a transient failure before the run fails.")
    retry_backoff_s: Duration = Field(1.0, gt=0, description="First retry delay; doubles per retry, jittered.")
    retry_backoff_max_s: Duration = Field(60.0, gt=0, description="Longest delay between two retries.")
    visibility_timeout_s: Duration = Field(
        3600.0, gt=0, description="Redis broker: an unacknowledged task is redelivered after this long "
        "(a killed worker's task). Longer than the longest action, verification included.")
    approval_timeout_s: Duration = Field(3600.0, gt=0, description="A pending approval expires after this long.")
    sweep_interval_s: Duration = Field(
        1.0, gt=0, description="How often the agent dispatches approved runs and expires stale approvals.")
    executor_threads: int = Field(4, ge=1, le=64, description="Threads of the in-process executor (no broker).")
    gpu_quota: GpuQuotaSettings = Field(default_factory=GpuQuotaSettings,  # type: ignore[arg-type]
                                        description="GPU shares per workload class (see docs/quotas.md).")
    max_concurrent_runs: int = Field(
        10, ge=1, description="Runs queued or executing at once across every playbook and agent; more are refused.")
    max_cordoned_nodes: int = Field(
        1, ge=0, description="Nodes that may be unschedulable in the cluster after a k8s_cordon run (all playbooks).")
    system_namespaces: list[str] = Field(
        default_factory=lambda: ["kube-*", "openshift-*", "istio-system", "cert-manager", "gpu-operator"],
        description="Namespaces (fnmatch patterns) no playbook touches unless its guards.namespaces names them.")
    run_lease_s: Duration = Field(
        30.0, gt=0, description="A worker's lease on a run; renewed every third of it while the action and its "
        "verification run, so a dead worker's run is taken over this long after it died.")
    requeue_after_s: Duration = Field(
        30.0, gt=0, description="A run still queued this long after it was sent (past its delay) with no worker "
        "taking it (lost with a broker restart) is sent again; its lease keeps it exactly-once.")
