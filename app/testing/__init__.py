"""Test helpers that ship with the package, like ``prometheus_client``'s: a fake Kubernetes API.

:class:`FakeKubernetes` serves the Kubernetes API subset our remediation uses on 127.0.0.1 so
that the real ``kubernetes`` client runs against it; ``aiops demo`` uses it for the closed loop
on a laptop. Nothing here is imported by the agent itself.
"""

from app.testing.fake_k8s import FakeKubernetes, Fault, RecordedRequest

__all__ = ["FakeKubernetes", "Fault", "RecordedRequest"]
