"""The REST side of the fake Kubernetes API server: URL routing, RBAC denials and the verbs
list, get, create, update, patch, delete.

URLs are parsed into :class:`ApiRequest` (group, version, namespace, resource, name,
subresource); each verb returns ``(status code, body)`` or raises :class:`ApiError`, which
the HTTP layer renders as a Kubernetes ``Status`` object.
Semantics follow the real API server where our remediation depends on them:
``resourceVersion`` is a cluster-wide counter bumped on every write; an update (PUT) or a
patch carrying a stale ``metadata.resourceVersion`` gets 409 Conflict; ``generation`` moves
only when ``spec`` changes; the ``scale`` subresource reads and writes ``spec.replicas``
through an ``autoscaling/v1`` ``Scale``.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

from app.testing import k8s_objects as ko
from app.testing.k8s_pdb import eviction_refusal, validate_pdb
from app.testing.k8s_watch import WatchJournal

__all__ = ["ApiError", "ApiRequest", "ApiVerbs"]

Obj = dict[str, Any]
_PLURAL_OF_KIND = {r.kind: r.plural for r in ko.RESOURCES.values()}
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class ApiError(Exception):
    """An API failure: rendered as a ``Status`` with ``code``, ``reason`` and ``message``."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One parsed request against a resource."""

    verb: str  # get, list, create, update, patch, delete
    resource: ko.Resource
    namespace: str | None
    name: str | None
    subresource: str | None
    query: dict[str, str]
    body: Any
    content_type: str


class ApiVerbs:
    """Resource handlers over ``self._objects``; mixed into :class:`~app.testing.FakeKubernetes`."""

    _objects: dict[str, dict[tuple[str | None, str], Obj]]
    _rv: int
    journal: WatchJournal
    _forbidden: set[tuple[str, str, str | None]]
    user: str

    def _bump(self, obj: Obj, spec_changed: bool = False) -> None:
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        if spec_changed or "generation" not in meta:
            meta["generation"] = int(meta.get("generation", 0)) + 1
        plural = _PLURAL_OF_KIND.get(obj.get("kind", ""))
        store = self._objects.get(plural or "")
        if store is not None and store.get((meta.get("namespace"), meta.get("name", ""))) is obj:
            self.journal.record(plural or "", "MODIFIED", obj)  # a stored object changed: watchers hear it

    def _add_event(self, ns: str, involved: Obj, reason: str, message: str, type_: str = "Normal",
                   component: str = "deployment-controller") -> None:
        ev = ko.event(ns, involved, reason, message, type_, component)
        self._bump(ev)
        self._objects["events"][(ns, ev["metadata"]["name"])] = ev

    @staticmethod
    def _not_found(req: ApiRequest, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{req.resource.qualified} "{name}" not found',
                        {"name": name, "group": req.resource.group, "kind": req.resource.plural})

    @staticmethod
    def _conflict(req: ApiRequest, name: str) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {req.resource.qualified} "{name}": '
                        "the object has been modified; please apply your changes to the latest version and try again",
                        {"name": name, "group": req.resource.group, "kind": req.resource.plural})

    def _key(self, req: ApiRequest, name: str) -> tuple[str | None, str]:
        return (req.namespace if req.resource.namespaced else None, name)

    def _existing(self, req: ApiRequest) -> Obj:
        assert req.name is not None
        obj = self._objects[req.resource.plural].get(self._key(req, req.name))
        if obj is None:
            raise self._not_found(req, req.name)
        return obj

    # --- routing and RBAC ------------------------------------------------------------------

    def _parse(self, method: str, path: str, query: dict[str, str], body: Any, content_type: str) -> ApiRequest:
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in ko.RESOURCES or len(rest) > 3:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
        resource = ko.RESOURCES[(group, version, rest[0])]
        if resource.namespaced and ns is None and len(rest) > 1:
            raise ApiError(404, "NotFound", f"{resource.plural} are namespaced ({path})")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if method not in _VERBS:
            raise ApiError(405, "MethodNotAllowed", f"method {method} is not allowed")
        verb = "list" if method == "GET" and name is None else _VERBS[method]
        if verb == "create" and name is not None and sub is None:
            raise ApiError(405, "MethodNotAllowed", f"POST to {path}: create goes to the collection")
        if verb in ("update", "patch", "delete") and name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} {path} needs an object name")
        return ApiRequest(verb, resource, ns, name, sub, query, body, content_type)

    def _denied(self, req: ApiRequest) -> ApiError | None:
        res = req.resource.plural + (f"/{req.subresource}" if req.subresource else "")
        if not any((req.verb, res, n) in self._forbidden for n in (None, req.namespace)):
            return None
        what = f'{req.resource.qualified} "{req.name}" is forbidden' if req.name else \
            f"{req.resource.qualified} is forbidden"
        where = f' in the namespace "{req.namespace}"' if req.namespace else " at the cluster scope"
        msg = (f'{what}: User "{self.user}" cannot {req.verb} resource "{res}" in API group '
               f'"{req.resource.group}"{where}')
        return ApiError(403, "Forbidden", msg, {"name": req.name, "group": req.resource.group,
                                                "kind": req.resource.plural})

    # --- dispatch --------------------------------------------------------------------------

    def handle(self, req: ApiRequest) -> tuple[int, Obj]:
        """Run one request; the caller holds the store lock."""
        if req.query.get("watch") in ("true", "1"):
            raise ApiError(400, "BadRequest", "watch requests are streamed by the HTTP layer (FakeKubernetes.watch)")
        if req.subresource not in (None, "scale", "status", "eviction"):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({req.resource.plural}/{req.subresource})")
        if req.subresource == "scale" and req.resource.plural not in ("deployments", "statefulsets"):
            raise ApiError(404, "NotFound", f"{req.resource.plural} have no scale subresource")
        if req.subresource == "eviction":
            if req.verb != "create" or req.resource.plural != "pods":
                raise ApiError(405, "MethodNotAllowed", "eviction accepts only POST on pods")
            return self._evict(req)
        if req.verb == "list":
            return 200, self._list(req)
        if req.verb == "create":
            return 201, self._create(req)
        obj = self._existing(req)
        if req.verb == "get":
            return 200, self._scale_of(obj) if req.subresource == "scale" else copy.deepcopy(obj)
        if req.verb == "delete":
            del self._objects[req.resource.plural][self._key(req, req.name or "")]
            self._rv += 1
            if req.resource.plural == "pods":
                return 200, copy.deepcopy(obj)
            return 200, ko.status_body(200, "", "", {"name": req.name, "group": req.resource.group,
                                                     "kind": req.resource.plural, "uid": obj["metadata"]["uid"]})
        if req.verb in ("update", "patch"):
            return 200, self._write(req, obj)
        raise ApiError(405, "MethodNotAllowed", f"verb {req.verb} is not supported on {req.resource.plural}")

    # --- verbs -----------------------------------------------------------------------------

    def _list(self, req: ApiRequest) -> Obj:
        items = [copy.deepcopy(o) for (ns, _), o in sorted(self._objects[req.resource.plural].items(),
                                                           key=lambda kv: (kv[0][0] or "", kv[0][1]))
                 if req.namespace is None or ns == req.namespace
                 if ko.match_labels(o["metadata"].get("labels") or {}, req.query.get("labelSelector"))
                 if ko.match_fields(o, req.query.get("fieldSelector"))]
        return {"apiVersion": req.resource.api_version, "kind": f"{req.resource.kind}List",
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def _create(self, req: ApiRequest) -> Obj:
        body = req.body
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", f"create {req.resource.plural}: body must be a JSON object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name") or (meta.get("generateName", "") + uuid.uuid4().hex[:5] if meta.get("generateName")
                                    else None)
        if not name:
            raise ApiError(422, "Invalid", f"{req.resource.kind} is invalid: metadata.name: Required value",
                           {"kind": req.resource.kind})
        if req.resource.namespaced:
            if meta.get("namespace", req.namespace) != req.namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                               "the namespace sent on the request")
            meta["namespace"] = req.namespace
        if self._key(req, name) in self._objects[req.resource.plural]:
            raise ApiError(409, "AlreadyExists", f'{req.resource.qualified} "{name}" already exists',
                           {"name": name, "group": req.resource.group, "kind": req.resource.plural})
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=ko.rfc3339())
        meta.pop("resourceVersion", None)
        meta.pop("generation", None)
        obj["apiVersion"], obj["kind"] = req.resource.api_version, req.resource.kind
        meta.setdefault("labels", {})
        meta.setdefault("annotations", {})
        if req.resource.plural == "pods":  # what the API server and scheduler fill in
            obj["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
        elif req.resource.plural != "events":
            obj["status"] = obj.get("status") or {}
        self._validate(req, obj)
        self._bump(obj)
        self._objects[req.resource.plural][self._key(req, name)] = obj
        return copy.deepcopy(obj)

    def _write(self, req: ApiRequest, obj: Obj) -> Obj:
        """PUT or PATCH of an object or its scale subresource."""
        scale = req.subresource == "scale"
        current = self._scale_of(obj) if scale else copy.deepcopy(obj)
        if req.verb == "update":
            if not isinstance(req.body, dict):
                raise ApiError(400, "BadRequest", "update body must be a JSON object")
            proposed = copy.deepcopy(req.body)
        else:
            try:
                proposed = ko.apply_patch(current, req.body, req.content_type)
            except ko.PatchError as exc:
                code = 415 if "content type" in str(exc) else 422
                raise ApiError(code, "UnsupportedMediaType" if code == 415 else "Invalid", str(exc)) from None
        rv = (proposed.get("metadata") or {}).get("resourceVersion")
        # An update without resourceVersion is unconditional, as on a real API server.
        if rv not in (None, "") and rv != obj["metadata"]["resourceVersion"]:
            raise self._conflict(req, obj["metadata"]["name"])
        meta = proposed.get("metadata") or {}
        if meta.get("name", obj["metadata"]["name"]) != obj["metadata"]["name"]:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        if scale:
            replicas = (proposed.get("spec") or {}).get("replicas")
            self._check_replicas(req, replicas, "spec.replicas")
            if replicas == obj["spec"].get("replicas"):
                return self._scale_of(obj)
            obj["spec"]["replicas"] = replicas
            self._bump(obj, spec_changed=True)
            return self._scale_of(obj)
        if req.subresource == "status":
            new = {**obj, "status": proposed.get("status", obj.get("status"))}
        else:
            # Writes to the main resource keep server-owned fields; status has its own subresource.
            new = {**proposed, "apiVersion": obj["apiVersion"], "kind": obj["kind"], "status": obj.get("status")}
            new["metadata"] = {**meta, **{k: obj["metadata"][k] for k in ("name", "uid", "creationTimestamp",
                                                                            "resourceVersion", "generation")
                                           if k in obj["metadata"]}}
            if "namespace" in obj["metadata"]:
                new["metadata"]["namespace"] = obj["metadata"]["namespace"]
            self._validate(req, new)
        if new == obj:
            return copy.deepcopy(obj)  # a no-op write does not move resourceVersion, as on a real server
        spec_changed = new.get("spec") != obj.get("spec")
        obj.clear()
        obj.update(new)
        self._bump(obj, spec_changed=spec_changed and req.resource.plural != "pods")
        return copy.deepcopy(obj)

    def _evict(self, req: ApiRequest) -> tuple[int, Obj]:
        assert req.name is not None
        if self._key(req, req.name) not in self._objects["pods"]:
            raise self._not_found(req, req.name)
        refused = eviction_refusal(self._objects, req.namespace or "", self._objects["pods"][self._key(req, req.name)])
        if refused is not None:
            code, message, details = refused
            raise ApiError(code, "TooManyRequests" if code == 429 else "InternalError", message, details)
        del self._objects["pods"][self._key(req, req.name)]
        self._rv += 1
        return 201, ko.status_body(201, "", "")

    def _scale_of(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        selector = ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"].get("matchLabels", {}).items())
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0), "selector": selector}}

    @staticmethod
    def _check_replicas(req: ApiRequest, replicas: Any, field: str) -> None:
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "Invalid", f'{req.resource.kind} "{req.name}" is invalid: {field}: Invalid value: '
                           f"{replicas!r}: must be greater than or equal to 0",
                           {"name": req.name, "group": req.resource.group, "kind": req.resource.kind})

    def _validate(self, req: ApiRequest, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if req.resource.plural in ("deployments", "statefulsets"):
            self._check_replicas(req, spec.get("replicas", 1), "spec.replicas")
            if not isinstance(spec.get("template"), dict) or not isinstance(spec.get("selector"), dict):
                raise ApiError(422, "Invalid", f'{req.resource.kind} "{obj["metadata"]["name"]}" is invalid: '
                               "spec.selector and spec.template are required")
        if req.resource.plural == "poddisruptionbudgets" and (why := validate_pdb(obj)) is not None:
            raise ApiError(422, "Invalid", why, {"name": obj["metadata"]["name"], "group": "policy",
                                                 "kind": "PodDisruptionBudget"})
        if req.resource.plural == "horizontalpodautoscalers":
            lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if not isinstance(hi, int) or not isinstance(lo, int) or lo < 1 or hi < lo:
                raise ApiError(422, "Invalid", f'HorizontalPodAutoscaler "{obj["metadata"]["name"]}" is invalid: '
                               f"spec.maxReplicas: Invalid value: {hi!r}: must be >= minReplicas ({lo!r})")
