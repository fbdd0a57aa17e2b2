"""The Kubernetes client of the actions: the official ``kubernetes`` package, errors mapped.

Configuration comes from a kubeconfig file (``remediation.kubeconfig``), else the in-cluster
service account, else ``~/.kube/config``. Every API call goes through :meth:`Kube.call`, which
translates the client's exceptions at the edge, as kopf's ``check_response`` does: a 409
conflict, 429, 5xx, timeouts and connection errors become :class:`~aiops.errors.TemporaryError`
(retried), 403/404/422 and other 4xx become :class:`~aiops.errors.PermanentError` (recorded as
failed). A ``Status`` body is rendered as its reason, message and causes (what a
PodDisruptionBudget refusal says), trimmed to 256 characters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiops.errors import ConfigError, PermanentError, RemediationError, TemporaryError, trim
from aiops.kubeconfig import kube_api_client

__all__ = ["Kube", "KubeTemporaryError", "KubePermanentError"]

T = TypeVar("T")


class KubeTemporaryError(TemporaryError, RemediationError):
    """A Kubernetes call failed in a way worth retrying (409, 429, 5xx, timeout, connection)."""

    def __init__(self, message: str, status: int | None = None, delay_s: float | None = None) -> None:
        super().__init__(message, delay_s)
        self.status = status


class KubePermanentError(PermanentError, RemediationError):
    """A Kubernetes call failed for good (403 forbidden, 404 not found, 422 invalid, ...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Kube:
    """Lazily built API clients sharing one configuration.

    Args:
        kubeconfig: a kubeconfig file; ``None`` tries in-cluster, then ``~/.kube/config``.
        context: kubeconfig context (default: current).
        timeout_s: timeout of each request (connect + read).
    """

    def __init__(self, kubeconfig: Path | None = None, context: str | None = None, timeout_s: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        self.timeout_s = timeout_s
        self._api_client: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._api_client is not None:
                return self._api_client
            try:
                # Our own retry policy (Celery, with backoff and an audit trail) replaces urllib3's
                # silent retries, which would multiply a timeout by four.
                self._api_client = kube_api_client(self.kubeconfig, self.context, retries=0)
            except ConfigError as exc:
                raise KubePermanentError(str(exc)) from exc
            return self._api_client

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self._client())

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._client())

    @property
    def autoscaling(self) -> Any:
        from kubernetes import client

        return client.AutoscalingV2Api(self._client())

    @property
    def custom(self) -> Any:
        """Custom resources (KEDA ScaledObjects)."""
        from kubernetes import client

        return client.CustomObjectsApi(self._client())

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` with the request timeout, mapping errors.

        Args:
            what: the call in words, for messages: ``"patch deployment prod/llm scale"``.
        """
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        kwargs.setdefault("_request_timeout", self.timeout_s)
        try:
            return fn(*args, **kwargs)
        except ApiException as exc:
            status = int(exc.status or 0)
            body = trim(_status_text(exc.body) or exc.reason or "")
            message = f"kubernetes: {what}: HTTP {status}: {body}"
            if status in (409, 429) or status >= 500 or status == 0:
                delay = _retry_after(exc)
                raise KubeTemporaryError(message, status, delay) from exc
            raise KubePermanentError(message, status) from exc
        except (Urllib3Error, OSError, TimeoutError) as exc:
            raise KubeTemporaryError(f"kubernetes: {what}: {exc.__class__.__name__}: {trim(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            if self._api_client is not None:
                self._api_client.close()
                self._api_client = None


def _retry_after(exc: Any) -> float | None:
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _status_text(body: Any) -> str:
    """The words of a Kubernetes ``Status`` body: its message and causes (a PodDisruptionBudget
    refusal names the budget there), not its JSON; any other body as it is."""
    if not body:
        return ""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        status = json.loads(text)
    except ValueError:
        return text
    if not isinstance(status, dict) or status.get("kind") != "Status" or not status.get("message"):
        return text
    causes = [c for c in (status.get("details") or {}).get("causes") or [] if isinstance(c, dict)]
    extra = "; ".join(f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ") for c in causes)
    out = f"{status.get('reason', '')}: {status['message']}".lstrip(": ")
    return f"{out} ({extra})" if extra else out
