"""The fake cluster's controllers: pods follow workload replicas, status follows pods.

A much reduced deployment controller, statefulset controller and kubelet, enough for
remediation to see what it would see on a real cluster: after a scale, new pods appear
Pending, turn Running and Ready after ``pod_ready_delay_s``, and the workload's
``status.readyReplicas`` follows; a changed pod template (``kubectl rollout restart``) rolls
pods over to a new ``pod-template-hash``; scaling writes ``ScalingReplicaSet`` events.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from aiops.logs import get_logger
from app.testing import k8s_objects as ko
from app.testing.k8s_quota import quota_refusal, refresh_quota_status

__all__ = ["ClusterController"]

Obj = dict[str, Any]
log = get_logger("app.testing.fake_k8s")


class ClusterController:
    """Reconciles the objects of a :class:`~app.testing.FakeKubernetes` in a background thread.

    The fake owns the objects and the lock; this class only reads and writes them through
    ``store``'s ``_objects``, ``_lock``, ``_bump`` and ``_add_event``.
    """

    def __init__(self, store: Any, interval_s: float, pod_ready_delay_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self.pod_ready_delay_s = pod_ready_delay_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._born: dict[tuple[str, str], float] = {}  # pod -> monotonic creation time
        self._owner: dict[tuple[str, str], tuple[str, str]] = {}  # pod -> (plural, workload name)
        self._scaled_to: dict[tuple[str, str, str], int] = {}  # workload -> replicas last announced
        self._seq = itertools.count(1)
        self._ip = itertools.count(2)
        self._rr = itertools.count()
        self._quota_blocked: set[tuple[str, str]] = set()  # workloads whose last pod creation hit a quota

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fake-k8s-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.reconcile()
            except Exception as exc:  # one odd object must not stop the cluster; say which pass failed
                log.exception("fake_k8s_reconcile_failed", error=str(exc))

    def reconcile(self) -> None:
        """One pass over every Deployment and StatefulSet, then the kubelet."""
        with self.store._lock:
            for (ns, name), obj in list(self.store._objects["deployments"].items()):
                self._deployment(ns, name, obj)
            for (ns, name), obj in list(self.store._objects["statefulsets"].items()):
                self._statefulset(ns, name, obj)
            self._forget_orphans()
            self._kubelet()
            refresh_quota_status(self.store._objects, self.store._bump)
            for plural in ("deployments", "statefulsets"):
                for (ns, name), obj in list(self.store._objects[plural].items()):
                    self._status(plural, ns, name, obj)

    # --- helpers ---------------------------------------------------------------------------

    def _pods_of(self, plural: str, ns: str, name: str) -> list[Obj]:
        pods = self.store._objects["pods"]
        keys = [k for k, owner in self._owner.items() if owner == (plural, name) and k[0] == ns and k in pods]
        return sorted((pods[k] for k in keys), key=lambda p: self._born.get((ns, p["metadata"]["name"]), 0.0))

    def _create_pod(self, plural: str, ns: str, name: str, pod_name: str, workload: Obj, owner: Obj,
                    pod_hash: str) -> None:
        template = workload["spec"]["template"]
        refused = quota_refusal(self.store._objects, ns, template.get("spec", {}))
        if refused is not None:  # as the ReplicaSet controller reports a quota refusal: once per episode
            if (ns, name) not in self._quota_blocked:
                self._quota_blocked.add((ns, name))
                self.store._add_event(ns, workload, "FailedCreate", f"Error creating: {refused}", "Warning",
                                      "replicaset-controller")
            return
        self._quota_blocked.discard((ns, name))
        labels = {**template.get("metadata", {}).get("labels", {}), "pod-template-hash": pod_hash}
        if plural == "statefulsets":
            labels["statefulset.kubernetes.io/pod-name"] = pod_name
        p = ko.pod(ns, pod_name, labels, template.get("spec", {}), owner, self._schedule())
        p["metadata"]["annotations"] = dict(template.get("metadata", {}).get("annotations", {}))
        self.store._bump(p)
        self.store._objects["pods"][(ns, pod_name)] = p
        self._born[(ns, pod_name)] = time.monotonic()
        self._owner[(ns, pod_name)] = (plural, name)

    def _delete_pod(self, ns: str, pod_name: str) -> None:
        self.store._objects["pods"].pop((ns, pod_name), None)
        self._born.pop((ns, pod_name), None)
        self._owner.pop((ns, pod_name), None)

    def _forget_orphans(self) -> None:
        """Forget pods deleted through the API; delete pods whose workload was deleted (garbage collection)."""
        pods, objects = self.store._objects["pods"], self.store._objects
        for key, (plural, name) in list(self._owner.items()):
            if key not in pods:
                self._owner.pop(key, None)
                self._born.pop(key, None)
            elif (key[0], name) not in objects[plural]:
                self._delete_pod(*key)
        for (ns, rs_name), rs in list(objects["replicasets"].items()):
            owner = rs["metadata"]["ownerReferences"][0]["name"]
            if (ns, owner) not in objects["deployments"]:
                objects["replicasets"].pop((ns, rs_name), None)

    def _schedule(self) -> str | None:
        """A schedulable node (round robin), ``None`` when every registered node is cordoned.

        With no Node objects at all the cluster has unlimited room: pods run unscheduled.
        """
        nodes = self.store._objects["nodes"]
        if not nodes:
            return ""
        ready = sorted(n for (_, n), obj in nodes.items() if not obj.get("spec", {}).get("unschedulable"))
        if not ready:
            return None
        chosen: str = ready[next(self._rr) % len(ready)]
        return chosen

    def _announce(self, plural: str, ns: str, name: str, obj: Obj, rs_name: str, desired: int) -> None:
        key = (plural, ns, name)
        before = self._scaled_to.get(key)
        if before == desired:
            return
        self._scaled_to[key] = desired
        if plural == "deployments":
            direction = "up" if before is None or desired > before else "down"
            frm = "" if before is None else f" from {before}"
            self.store._add_event(ns, obj, "ScalingReplicaSet",
                                  f"Scaled {direction} replica set {rs_name}{frm} to {desired}")
        else:
            self.store._add_event(ns, obj, "SuccessfulScale",
                                  f"StatefulSet {ns}/{name} scaled from {before or 0} to {desired}",
                                  component="statefulset-controller")

    @staticmethod
    def _ready(p: Obj) -> bool:
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in p["status"].get("conditions", []))

    # --- controllers -----------------------------------------------------------------------

    def _deployment(self, ns: str, name: str, obj: Obj) -> None:
        desired = int(obj["spec"].get("replicas", 1))
        h = ko.template_hash(obj["spec"]["template"])
        rs_name = f"{name}-{h}"
        rs = self._replicaset(ns, rs_name, obj, h, desired)
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": rs["metadata"]["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        self._announce("deployments", ns, name, obj, rs_name, desired)
        pods = self._pods_of("deployments", ns, name)
        new = [p for p in pods if p["metadata"]["labels"].get("pod-template-hash") == h]
        old = [p for p in pods if p not in new]
        for _ in range(desired - len(new)):
            self._create_pod("deployments", ns, name, f"{rs_name}-{next(self._seq)}", obj, owner, h)
        if len(new) > desired:
            # Scale down: not-ready pods first, then the youngest, like the ReplicaSet controller.
            victims = sorted(new, key=lambda p: (self._ready(p), -self._born.get((ns, p["metadata"]["name"]), 0)))
            for p in victims[: len(new) - desired]:
                self._delete_pod(ns, p["metadata"]["name"])
        new_ready = sum(self._ready(p) for p in self._pods_of("deployments", ns, name)
                        if p["metadata"]["labels"].get("pod-template-hash") == h)
        if old and new_ready >= desired:
            for p in old:
                self._delete_pod(ns, p["metadata"]["name"])

    def _replicaset(self, ns: str, rs_name: str, deployment: Obj, pod_hash: str, desired: int) -> Obj:
        """Keep the ReplicaSet object of the current template (owner of the new pods) in the store."""
        store = self.store._objects["replicasets"]
        rs: Obj | None = store.get((ns, rs_name))
        if rs is None:
            rs = ko.replicaset(ns, rs_name, deployment, pod_hash, desired)
            self.store._bump(rs)
            store[(ns, rs_name)] = rs
        elif rs["spec"].get("replicas") != desired:
            rs["spec"]["replicas"] = desired
            rs["status"]["replicas"] = desired
            self.store._bump(rs)
        return rs

    def _statefulset(self, ns: str, name: str, obj: Obj) -> None:
        desired = int(obj["spec"].get("replicas", 1))
        h = ko.template_hash(obj["spec"]["template"])
        owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name, "uid": obj["metadata"]["uid"],
                 "controller": True, "blockOwnerDeletion": True}
        self._announce("statefulsets", ns, name, obj, name, desired)
        pods = {p["metadata"]["name"]: p for p in self._pods_of("statefulsets", ns, name)}
        for i in range(desired):
            if f"{name}-{i}" not in pods:
                self._create_pod("statefulsets", ns, name, f"{name}-{i}", obj, owner, h)
        for pod_name in pods:
            if int(pod_name.rsplit("-", 1)[1]) >= desired:
                self._delete_pod(ns, pod_name)
        # Rolling update, highest ordinal first, one pod at a time once all are ready.
        current = self._pods_of("statefulsets", ns, name)
        stale = sorted((p for p in current if p["metadata"]["labels"].get("pod-template-hash") != h),
                       key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]))
        if stale and all(self._ready(p) for p in current):
            self._delete_pod(ns, stale[0]["metadata"]["name"])

    def _kubelet(self) -> None:
        now = time.monotonic()
        for (ns, pod_name), p in self.store._objects["pods"].items():
            st = p["status"]
            if st.get("phase") != "Pending":
                continue
            if not any(c.get("type") == "PodScheduled" and c.get("status") == "True" for c in st["conditions"]):
                node_name = self._schedule()
                if node_name is None:
                    continue
                if node_name:
                    p["spec"]["nodeName"] = node_name
                st["conditions"] = [{"type": "PodScheduled", "status": "True"}]
                self.store._bump(p)
            # A pod created through the API (not by a workload) starts its clock when first seen.
            if now - self._born.setdefault((ns, pod_name), now) < self.pod_ready_delay_s:
                continue
            started = ko.rfc3339()
            st.update({
                "phase": "Running",
                "podIP": f"10.244.0.{next(self._ip) % 250 + 2}",
                "startTime": started,
                "conditions": [{"type": t, "status": "True", "lastTransitionTime": started}
                               for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                       "ready": True, "restartCount": 0, "started": True,
                                       "state": {"running": {"startedAt": started}}}
                                      for c in p["spec"].get("containers", [])],
            })
            self.store._bump(p)

    def _status(self, plural: str, ns: str, name: str, obj: Obj) -> None:
        h = ko.template_hash(obj["spec"]["template"])
        pods = self._pods_of(plural, ns, name)
        ready = sum(self._ready(p) for p in pods)
        updated = sum(p["metadata"]["labels"].get("pod-template-hash") == h for p in pods)
        counts = {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                  "updatedReplicas": updated}
        if plural == "statefulsets":
            counts["currentReplicas"] = updated
        # Like the API server, zero counts are omitted (omitempty): clients must read None as 0.
        status: Obj = {k: v for k, v in counts.items() if v or k == "replicas"}
        status["observedGeneration"] = obj["metadata"].get("generation", 1)
        if plural == "statefulsets":
            status["currentRevision"] = status["updateRevision"] = f"{name}-{h}"
        if plural == "deployments":
            desired = int(obj["spec"].get("replicas", 1))
            status["conditions"] = [{"type": "Available", "status": "True" if ready >= desired else "False",
                                     "reason": "MinimumReplicasAvailable" if ready >= desired
                                     else "MinimumReplicasUnavailable"}]
        if status != obj.get("status"):
            obj["status"] = status
            self.store._bump(obj)
