"""schemathesis against the OpenAPI document of a running agent: no generated request makes a 500.

Bounded: eight examples per operation (positive and negative: wrong types, missing fields,
odd strings), a deadline per request, and the whole run well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from app.agent import Agent
from tests.security.support import TOKENS, healthy, running_agent, settings_for


@pytest.fixture(scope="module")
def fuzzed_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    tmp = tmp_path_factory.mktemp("fuzz")
    gated = {"name": "gated", "trigger": {"match": {"alertname": "NeverSentByTheFuzzer-7f3a"}},
             "steps": [{"action": "http", "approval": True, "params": {"request": {
                 "url": "http://127.0.0.1:1/never", "method": "POST"}}}]}
    with running_agent(settings_for(tmp, [gated])) as agent:
        yield agent
        assert healthy(agent)


@pytest.fixture(scope="module")
def api_schema(fuzzed_agent: Agent) -> Any:
    return schemathesis.openapi.from_url(f"{fuzzed_agent.api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_generated_request_is_a_server_error(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKENS['admin']}"}, timeout=10)
    case.validate_response(response, checks=[not_a_server_error])
