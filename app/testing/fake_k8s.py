"""A fake Kubernetes API server at the wire, for tests and ``aiops demo``.

:class:`FakeKubernetes` is an HTTP server on 127.0.0.1 (our one HTTP base,
:class:`aiops.httpapi.HttpApi`, with one catch-all route per verb) that speaks the part of the
Kubernetes API our remediation uses, so the real ``kubernetes`` client runs unchanged against
it through a generated kubeconfig (as kopf's KMock fakes the API at the wire):

- ``apps/v1`` Deployments and StatefulSets: list, get, create, update (PUT), patch (strategic
  merge, merge and JSON patch), delete, and the ``scale`` subresource (``autoscaling/v1`` Scale);
- ``autoscaling/v2`` HorizontalPodAutoscalers; core ``v1`` Pods (label/field selectors,
  delete, eviction), ``policy/v1`` PodDisruptionBudgets (an eviction that would break one
  answers 429, see :mod:`app.testing.k8s_pdb`), Nodes (cordon by patching
  ``spec.unschedulable``), Events (list, create).

Around it: bearer-token authentication, RBAC denials (:meth:`FakeKubernetes.forbid`), fault
injection (:meth:`~FakeKubernetes.fail_next`, :meth:`~FakeKubernetes.conflict_next`,
:meth:`~FakeKubernetes.slow_down`), a request log, and a controller that makes pods follow
replicas (see :mod:`app.testing.k8s_controller`).
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from aiops.httpapi import HttpApi, Request, Response
from app.testing import k8s_objects as ko
from app.testing import k8s_pdb
from app.testing.k8s_api import ApiError, ApiRequest, ApiVerbs
from app.testing.k8s_controller import ClusterController
from app.testing.k8s_watch import JournaledObjects, WatchJournal

__all__ = ["FakeKubernetes", "RecordedRequest", "Fault"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it (``body`` is parsed JSON, or ``None``)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    content_type: str
    status: int


@dataclass(slots=True)
class Fault:
    """An injected failure: the next ``times`` matching requests get ``status``."""

    method: str  # "*" matches every method, "WRITE" every method but GET
    path_contains: str
    status: int
    times: int
    retry_after: float | None = None
    message: str = ""

    def matches(self, method: str, path: str) -> bool:
        wanted = self.method in ("*", method) or (self.method == "WRITE" and method != "GET")
        return self.times > 0 and wanted and self.path_contains in path


@dataclass(slots=True)
class _Delay:
    seconds: float = 0.0
    path_contains: str = ""
    until: float = field(default=float("inf"))


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            422: "Invalid", 429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


class FakeKubernetes(ApiVerbs):
    """An in-process Kubernetes API server for the real ``kubernetes`` client.

    Args:
        pod_ready_delay_s: seconds from a pod's creation to Running/Ready (``inf``: never ready).
        controller_interval_s: period of the controller loop.
        user: the user name that RBAC denials mention.

    Examples:
        >>> with FakeKubernetes() as fake:
        ...     fake.add_deployment("prod", "web", replicas=2)["metadata"]["name"]
        ...     from kubernetes import client
        ...     api = client.AppsV1Api(fake.api_client())
        ...     api.read_namespaced_deployment_scale("web", "prod").spec.replicas
        'web'
        2
    """

    def __init__(self, pod_ready_delay_s: float = 0.3, controller_interval_s: float = 0.05,
                 user: str = "system:serviceaccount:aiops:aiops-remediator") -> None:
        self.user = user
        self.token = secrets.token_hex(16)
        self._lock = threading.RLock()
        self._rv = 0
        self.journal = WatchJournal(self._next_rv)
        self._objects = {r.plural: JournaledObjects(r.plural, self.journal) for r in ko.RESOURCES.values()}
        self._faults: list[Fault] = []
        self._delay = _Delay()
        self._forbidden: set[tuple[str, str, str | None]] = set()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self.controller = ClusterController(self, controller_interval_s, pod_ready_delay_s)
        self._server: HttpApi | None = None
        self._dir: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        """Bind a free port on 127.0.0.1, write the kubeconfig, start serving and reconciling."""
        self._server = HttpApi("127.0.0.1", 0, title="fake Kubernetes API")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            # the fake checks its own bearer token (and answers Kubernetes' 401 Status), so the route is public
            self._server.route(method, "/{path:path}", self._http, role=None)
        self._server.start()
        self._dir = Path(tempfile.mkdtemp(prefix="fake-k8s-"))
        self.kubeconfig_path.write_text(json.dumps(self.kubeconfig(), indent=2), encoding="utf-8")
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop serving (hung responses are released), stop the controller, remove the kubeconfig."""
        self._stopping.set()
        self.controller.stop()
        if self._server is not None:
            self._server.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeKubernetes is not started"
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        assert self._dir is not None, "FakeKubernetes is not started"
        return self._dir / "kubeconfig"

    def kubeconfig(self, namespace: str = "default") -> Obj:
        """The kubeconfig document (JSON is YAML) pointing at this server with a token user."""
        return {"apiVersion": "v1", "kind": "Config", "preferences": {},
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake-user", "user": {"token": self.token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake-user",
                                                          "namespace": namespace}}],
                "current-context": "fake"}

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` configured from this server's kubeconfig."""
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig_path), client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # --- watch -----------------------------------------------------------------------------

    def watch(self, method: str, raw_path: str, headers: Any) -> tuple[int, Obj] | Any:
        """A ``?watch=true`` GET: ``(status, error body)``, or an iterator of watch events to stream."""
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/"), dict(parse_qsl(parts.query))
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, None, "", 200))
        if headers.get("Authorization", "") != f"Bearer {self.token}":
            return 401, ko.status_body(401, "Unauthorized", "Unauthorized")
        try:
            req = self._parse(method, path, query, None, "")
            with self._lock:
                denied = self._denied(ApiRequest("watch", req.resource, req.namespace, None, None, {}, None, ""))
            if denied:
                raise denied
        except ApiError as exc:
            return exc.code, ko.status_body(exc.code, exc.reason, exc.message, exc.details)
        try:
            since = int(query.get("resourceVersion") or 0)
        except ValueError:
            return 400, ko.status_body(400, "BadRequest", f"resourceVersion {query.get('resourceVersion')!r}")
        timeout_s = float(query.get("timeoutSeconds") or 300)

        def accept(obj: Obj) -> bool:
            meta = obj.get("metadata") or {}
            return ((req.namespace is None or meta.get("namespace") == req.namespace)
                    and ko.match_labels(meta.get("labels") or {}, query.get("labelSelector"))
                    and ko.match_fields(obj, query.get("fieldSelector")))

        return self.journal.follow(req.resource.plural, since, timeout_s, self._stopping, accept)

    def expire_watches(self) -> None:
        """Compact the change history: every open or resumed watch gets 410 Expired and must re-list."""
        self.journal.compact()

    # --- container lifecycle (what the kubelet would report) -----------------------------

    def oom_kill(self, ns: str, pod_name: str, container: str | None = None,
                 waiting_reason: str | None = "CrashLoopBackOff") -> Obj:
        """The kubelet's view of an OOM kill: lastState OOMKilled, one more restart, then waiting."""
        with self._lock:
            p = self._objects["pods"][(ns, pod_name)]
            statuses = p["status"].setdefault("containerStatuses", [])
            for cs in statuses:
                if container is None or cs["name"] == container:
                    cs["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                                      "finishedAt": ko.rfc3339()}}
                    cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
                    cs["ready"] = False
                    cs["state"] = ({"waiting": {"reason": waiting_reason}} if waiting_reason
                                   else {"running": {"startedAt": ko.rfc3339()}})
            ready = "False" if waiting_reason else "True"
            for c in p["status"].get("conditions", []):
                if c.get("type") in ("Ready", "ContainersReady"):
                    c["status"] = ready
            self._bump(p)
            self._add_event(ns, p, "BackOff" if waiting_reason else "Started",
                            f"Back-off restarting failed container {container or 'main'}", "Warning", "kubelet")
            return self._read("pods", ns, pod_name)

    def container_running(self, ns: str, pod_name: str) -> Obj:
        """Containers of the pod run again (after a back-off), ready."""
        with self._lock:
            p = self._objects["pods"][(ns, pod_name)]
            for cs in p["status"].get("containerStatuses", []):
                cs["state"] = {"running": {"startedAt": ko.rfc3339()}}
                cs["ready"] = True
            for c in p["status"].get("conditions", []):
                if c.get("type") in ("Ready", "ContainersReady"):
                    c["status"] = "True"
            self._bump(p)
            return self._read("pods", ns, pod_name)

    # --- seeding and reading ---------------------------------------------------------------

    def _put(self, plural: str, obj: Obj) -> Obj:
        with self._lock:
            self._bump(obj)
            self._objects[plural][(obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        return self._read(plural, obj["metadata"].get("namespace"), obj["metadata"]["name"])

    def add_deployment(self, ns: str, name: str, replicas: int = 1, labels: dict[str, str] | None = None,
                       image: str = "registry.local/inference:1.0") -> Obj:
        """Create a Deployment (selector and pod labels ``labels``, default ``app=<name>``)."""
        return self._put("deployments", ko.deployment(ns, name, replicas, labels, image))

    def add_statefulset(self, ns: str, name: str, replicas: int = 1, labels: dict[str, str] | None = None,
                        image: str = "registry.local/inference:1.0") -> Obj:
        """Create a StatefulSet; its pods are ``<name>-0`` .. ``<name>-<replicas-1>``."""
        return self._put("statefulsets", ko.statefulset(ns, name, replicas, labels, image))

    def add_hpa(self, ns: str, name: str, target: str, min_replicas: int = 1, max_replicas: int = 10,
                target_kind: str = "Deployment") -> Obj:
        """Create an autoscaling/v2 HorizontalPodAutoscaler for ``target_kind/target``."""
        return self._put("horizontalpodautoscalers", ko.hpa(ns, name, target, min_replicas, max_replicas,
                                                            target_kind))

    def add_service(self, ns: str, name: str, selector: dict[str, str], port: int = 80) -> Obj:
        """Create a ClusterIP Service selecting pods by ``selector``."""
        return self._put("services", ko.service(ns, name, selector, port))

    def add_node(self, name: str, labels: dict[str, str] | None = None, gpus: int = 1) -> Obj:
        """Register a Ready Node. Once any node exists, pods only run on schedulable nodes."""
        return self._put("nodes", ko.node(name, labels, gpus))

    def add_pdb(self, ns: str, name: str, selector: dict[str, str], min_available: int | str | None = None,
                max_unavailable: int | str | None = None) -> Obj:
        """Create a policy/v1 PodDisruptionBudget; evictions that would break it answer 429."""
        return self._put("poddisruptionbudgets", k8s_pdb.pdb(ns, name, selector, min_available, max_unavailable))

    def _read(self, plural: str, ns: str | None, name: str) -> Obj:
        with self._lock:
            obj = self._objects[plural].get((ns, name))
            if obj is None:
                raise KeyError(f"{plural} {ns}/{name} does not exist in the fake cluster")
            copied: Obj = json.loads(json.dumps(obj))
            return copied

    def get_deployment(self, ns: str, name: str) -> Obj:
        """A copy of the Deployment as stored (raises ``KeyError`` when absent)."""
        return self._read("deployments", ns, name)

    def get_statefulset(self, ns: str, name: str) -> Obj:
        return self._read("statefulsets", ns, name)

    def get_hpa(self, ns: str, name: str) -> Obj:
        return self._read("horizontalpodautoscalers", ns, name)

    def get_node(self, name: str) -> Obj:
        return self._read("nodes", None, name)

    def pods(self, ns: str, label_selector: str | None = None) -> list[Obj]:
        """Copies of the pods in ``ns`` matching ``label_selector``, sorted by name."""
        with self._lock:
            return [json.loads(json.dumps(p)) for (pns, _), p in sorted(self._objects["pods"].items())
                    if pns == ns and ko.match_labels(p["metadata"]["labels"], label_selector)]

    def events(self, ns: str, involved_name: str | None = None) -> list[Obj]:
        """Copies of the Events in ``ns`` (optionally about one object), oldest first."""
        with self._lock:
            evs = [e for (ens, _), e in self._objects["events"].items() if ens == ns
                   if involved_name is None or e["involvedObject"]["name"] == involved_name]
            return [json.loads(json.dumps(e)) for e in sorted(evs, key=lambda e: int(e["metadata"]["resourceVersion"]))]

    def set_replicas(self, ns: str, name: str, replicas: int, kind: str = "deployments") -> None:
        """Change ``spec.replicas`` behind the client's back (another actor, e.g. a human or an HPA)."""
        with self._lock:
            obj = self._objects[kind][(ns, name)]
            obj["spec"]["replicas"] = replicas
            self._bump(obj, spec_changed=True)

    def set_pod_ready_delay(self, seconds: float) -> None:
        """Seconds until new pods become Ready; ``float('inf')`` keeps them Pending (a failed rollout)."""
        self.controller.pod_ready_delay_s = seconds

    def wait_for(self, predicate: Any, timeout_s: float = 10.0, interval_s: float = 0.02) -> None:
        """Poll ``predicate()`` until true, or raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s}s")
            time.sleep(interval_s)

    def wait_ready(self, ns: str, name: str, replicas: int, timeout_s: float = 10.0,
                   kind: str = "deployments") -> None:
        """Wait until the workload reports ``readyReplicas == replicas`` and no surplus pods."""
        def done() -> bool:
            st = self._read(kind, ns, name).get("status", {})
            return bool(st.get("readyReplicas", 0) == replicas and st.get("replicas", 0) == replicas)
        self.wait_for(done, timeout_s)

    # --- RBAC, faults, request log ---------------------------------------------------------

    def forbid(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Deny ``verb`` (get, list, create, update, patch, delete) on ``resource`` (``deployments/scale``)."""
        with self._lock:
            self._forbidden.add((verb, resource, namespace))

    def allow(self, verb: str, resource: str, namespace: str | None = None) -> None:
        """Undo :meth:`forbid`."""
        with self._lock:
            self._forbidden.discard((verb, resource, namespace))

    def fail_next(self, method: str, path_contains: str, status: int, times: int = 1,
                  retry_after: float | None = None, message: str = "") -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with ``status``.

        ``method`` is an HTTP method, ``"*"`` (any) or ``"WRITE"`` (any but GET); ``retry_after`` adds a
        ``Retry-After`` header (seconds).
        """
        with self._lock:
            self._faults.append(Fault(method.upper(), path_contains, status, times, retry_after, message))

    def conflict_next(self, method: str = "WRITE", path_contains: str = "", times: int = 1) -> None:
        """Answer the next matching writes with 409 Conflict, as if another writer got there first.

        ``method`` defaults to every write (PUT, PATCH, POST, DELETE): reads never conflict.
        """
        self.fail_next(method, path_contains, 409, times)

    def slow_down(self, seconds: float, path_contains: str = "", for_s: float | None = None) -> None:
        """Hold matching responses for ``seconds`` (client timeouts); ``slow_down(0)`` turns it off."""
        self._delay = _Delay(seconds, path_contains, time.monotonic() + for_s if for_s else float("inf"))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request answered so far, in the order the answers were made.

        A request held by :meth:`slow_down` is recorded when its answer is written, with the
        status the server sent, even if the client timed out and never read it.
        """
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        """The recorded requests with this method whose path contains ``path_contains``."""
        return [r for r in self.requests if r.method == method.upper() and path_contains in r.path]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- request path ------------------------------------------------------------------------

    def _http(self, req: Request) -> Response:
        raw_path = req.path + ("?" + urlencode(req.query, doseq=True) if req.query else "")
        headers = _Headers(req.headers)
        if req.method == "GET" and req.arg("watch") in ("true", "1"):
            got = self.watch(req.method, raw_path, headers)
            if isinstance(got, tuple):
                return Response.json(got[1], got[0])
            resp = Response(200, content_type="application/json")
            resp.stream = (json.dumps(event).encode() + b"\n" for event in got)
            return resp
        code, body, extra = self._serve(req.method, raw_path, headers, req.body)
        out = Response.json(body, code)
        out.headers.update(extra)
        return out

    def _serve(self, method: str, raw_path: str, headers: Any, raw_body: bytes) -> tuple[int, Obj, dict[str, str]]:
        parts = urlsplit(raw_path)
        path, query = parts.path.rstrip("/"), dict(parse_qsl(parts.query))
        content_type = headers.get("Content-Type", "application/json")
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body.decode("utf-8", "replace")
        delay = self._delay
        if delay.seconds > 0 and delay.path_contains in path and time.monotonic() < delay.until:
            self._stopping.wait(delay.seconds)
        code, out, extra = self._answer(method, path, query, headers, body, content_type)
        with self._lock:
            self._requests.append(RecordedRequest(method, path, query, body, content_type, code))
        return code, out, extra

    def _answer(self, method: str, path: str, query: dict[str, str], headers: Any, body: Any,
                content_type: str) -> tuple[int, Obj, dict[str, str]]:
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake", "platform": "linux/amd64"}, {}
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None:
                fault.times -= 1
                extra = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
                reason = _REASONS.get(fault.status, "InternalError")
                msg = fault.message or f"injected {fault.status} {reason} for {method} {path}"
                return fault.status, ko.status_body(fault.status, reason, msg), extra
        if headers.get("Authorization", "") != f"Bearer {self.token}":
            return 401, ko.status_body(401, "Unauthorized", "Unauthorized"), {}
        try:
            req = self._parse(method, path, query, body, content_type)
            with self._lock:
                denied = self._denied(req)
                if denied:
                    raise denied
                code, out = self.handle(req)
            return code, out, {}
        except ApiError as exc:
            extra = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after is not None else {}
            return exc.code, ko.status_body(exc.code, exc.reason, exc.message, exc.details), extra


class _Headers(dict[str, str]):
    """Request headers looked up without regard to case, as HTTP means them."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)
