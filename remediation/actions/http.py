"""``http``: call an inference server's admin API (drain a replica, flush a cache, reload a model).

429, 5xx, timeouts and connection errors are retried; other 4xx fail the run. An optional
``rollback`` request undoes the call. The server is expected to make the call idempotent.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from aiops.errors import ConfigError, PermanentError, RemediationError, TemporaryError, trim
from aiops.logs import url_host
from aiops.secretref import resolve_ref_text
from remediation.actions.base import ActionContext, ActionParams, blast
from remediation.param_guards import check_http_host

__all__ = ["HttpAction", "HttpParams"]


class HttpRequestSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^https?://", description="Full URL of the admin endpoint.")
    method: str = Field("POST", pattern=r"^(GET|POST|PUT|PATCH|DELETE)$")
    json_body: Any = Field(None, alias="json", description="JSON body.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (tokens).")


class HttpParams(ActionParams):
    request: HttpRequestSpec
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    rollback: HttpRequestSpec | None = Field(None, description="Request that undoes this one.")


class _HttpTemporary(TemporaryError, RemediationError):
    pass


class _HttpPermanent(PermanentError, RemediationError):
    pass


def _send(spec: HttpRequestSpec, expect: list[int], timeout_s: float) -> dict[str, Any]:
    what = f"{spec.method} {url_host(spec.url)}"
    try:  # references (${env:X}, ${file:/p}) are stored as such and resolved only now
        headers = {k: resolve_ref_text(v, f"http.request.headers.{k}") for k, v in spec.headers.items()}
    except ConfigError as exc:
        raise _HttpPermanent(f"http: {what}: {exc}") from None
    try:
        resp = httpx.request(spec.method, spec.url, json=spec.json_body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise _HttpTemporary(f"http: {what}: {exc.__class__.__name__}: {trim(exc)}") from exc
    if resp.status_code in expect:
        return {"status": resp.status_code, "body": trim(resp.text)}
    message = f"http: {what}: HTTP {resp.status_code}: {trim(resp.text)}"
    if resp.status_code == 429 or resp.status_code >= 500:
        raise _HttpTemporary(message)
    raise _HttpPermanent(message)


class HttpAction:
    name: ClassVar[str] = "http"
    Params: ClassVar[type[ActionParams]] = HttpParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: HttpParams = params
        for where, spec in (("request", p.request), ("rollback", p.rollback)):
            why = check_http_host(spec.url, ctx.settings.http_allowed_hosts, where) if spec is not None else None
            if why:
                raise _HttpPermanent(f"http: {why}: refused")
        return {"previous": {}, "target": {"request": f"{p.request.method} {url_host(p.request.url)}"},
                "blast": blast()}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: HttpParams = params
        return _send(p.request, p.expect_status, ctx.settings.request_timeout_s)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: HttpParams = params
        if p.rollback is None:
            return {"rolled_back": False, "reason": "no rollback request configured"}
        return _send(p.rollback, p.expect_status, ctx.settings.request_timeout_s)
