"""Fixtures of the remediation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rem_helpers import alert, make_settings, playbook

from aiops.state import StateDB
from app.testing import FakeKubernetes
from remediation import Executor, Kube, RemediationComponent, RunStore, start_playbook
from remediation.actions import ActionContext
from remediation.settings import RemediationSettings


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    state.create_all()
    yield state
    state.dispose()



@pytest.fixture(autouse=True, scope="session")
def _alert_states_contract() -> None:
    """As the agent and every worker do at start: alerting answers remediation's AlertStates contract.

    Without it, whether a delayed step sees its alert fire again would depend on which test
    happened to import alerting first.
    """
    from app.wiring import provide_contracts

    provide_contracts()


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    """The fake Kubernetes API server, pods ready after 50 ms."""
    with FakeKubernetes(pod_ready_delay_s=0.05) as fake:
        yield fake


@pytest.fixture
def run(k8s: FakeKubernetes, db: StateDB) -> Iterator[Any]:
    """run(step, guards, **alert_labels) -> the finished Run, executed synchronously in this process."""
    settings = RemediationSettings(kubeconfig=k8s.kubeconfig_path, request_timeout_s=5, max_retries=0)
    kube = Kube(settings.kubeconfig, timeout_s=5)
    ex = Executor(settings, db, None, kube=kube)
    ex.dispatch = lambda rid, _delay: ex.execute(rid)
    n = iter(range(1, 10_000))

    def go(step: dict[str, Any], guards: dict[str, Any] | None = None, **labels: str) -> Any:
        pb = playbook([step], name=f"pb{next(n)}", guards=guards)
        runs = start_playbook(alert(starts_at_ms=next(n), **labels), pb, settings, db, ex.dispatch)
        return RunStore(db).get(runs[0].id)

    go.ctx = ActionContext(settings, db, kube)  # type: ignore[attr-defined]
    yield go
    kube.close()


@pytest.fixture
def component(tmp_path: Path, db: StateDB) -> Iterator[Any]:
    """component(playbooks, **remediation_settings) -> an attached in-process RemediationComponent."""
    made: list[RemediationComponent] = []

    def make(pbs: list[Any], **rem: Any) -> RemediationComponent:
        comp = RemediationComponent(make_settings(tmp_path, **rem), pbs)
        comp.attach(db)
        made.append(comp)
        return comp

    yield make
    for c in made:
        c.stop()
