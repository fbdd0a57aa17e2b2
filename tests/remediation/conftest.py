"""Fixtures of the remediation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiops.state import StateDB


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
