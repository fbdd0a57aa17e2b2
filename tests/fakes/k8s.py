"""The fake Kubernetes API server for tests: ``FakeKubernetes`` and a ``fake_k8s`` fixture.

The implementation ships in :mod:`app.testing` so that ``aiops demo`` works from a pip
install; tests import it from here. To use the fixture in a test package::

    # tests/<area>/conftest.py
    from tests.fakes.k8s import fake_k8s  # noqa: F401  (re-exported pytest fixture)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.testing import FakeKubernetes, Fault, RecordedRequest

__all__ = ["FakeKubernetes", "Fault", "RecordedRequest", "fake_k8s"]


@pytest.fixture
def fake_k8s() -> Iterator[FakeKubernetes]:
    """A started :class:`FakeKubernetes` (pods ready after 0.2 s), stopped after the test."""
    with FakeKubernetes(pod_ready_delay_s=0.2) as fake:
        yield fake
