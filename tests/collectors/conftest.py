"""Fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.collectors.helpers import TargetServer, serve_targets


@pytest.fixture
def target_server() -> Iterator[TargetServer]:
    """A real HTTP server on 127.0.0.1 (port 0); tests program its routes."""
    with serve_targets() as server:
        yield server
