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

