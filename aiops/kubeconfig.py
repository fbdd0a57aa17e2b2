"""The one Kubernetes configuration loader: a kubeconfig file, else in-cluster, else ``~/.kube/config``.

Remediation's clients (``remediation/kube.py``), the Kubernetes state collector
(``collectors/kubernetes.py``), the topology (``rca/topology_sources.py``) and the simulated
inference service (``app/sim.py``) all load their configuration here, so they agree on the order
and on the error a person reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiops.errors import ConfigError

__all__ = ["load_kube_configuration", "kube_api_client"]


def load_kube_configuration(kubeconfig: str | Path | None = None, context: str | None = None) -> Any:
    """A ``kubernetes.client.Configuration``: from ``kubeconfig`` when given, else in-cluster
    (a pod's service account), else ``~/.kube/config``; ``context`` picks a kubeconfig context.

    Raises:
        ConfigError: naming where it looked and why it failed.
    """
    from kubernetes import client, config

    # the kubernetes package ships no type hints; its loaders are plain functions
    cfg = client.Configuration()
    try:
        if kubeconfig is not None:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), context=context, client_configuration=cfg)
        else:
            try:
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config(context=context, client_configuration=cfg)  # type: ignore[no-untyped-call]
    except (config.ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "in-cluster / ~/.kube/config"
        raise ConfigError(f"kubernetes: cannot load configuration from {where}: {exc}") from exc
    return cfg


def kube_api_client(kubeconfig: str | Path | None = None, context: str | None = None, *,
                    retries: int | None = None) -> Any:
    """A ``kubernetes.client.ApiClient`` on :func:`load_kube_configuration`.

    Args:
        retries: urllib3 retries of one call; ``0`` where the caller retries itself (remediation
            does, with backoff and an audit trail, instead of multiplying a timeout by four).
    """
    from kubernetes import client

    cfg = load_kube_configuration(kubeconfig, context)
    if retries is not None:
        cfg.retries = retries
    return client.ApiClient(cfg)
