"""hypothesis over the config and playbook loaders and the action guards.

Properties: whatever the input, a loader answers a value or a ``ConfigError`` (never another
exception) and never echoes a secret; whatever an alert's labels hold, a rendered ``http``
action keeps the playbook's scheme, host and port and a rendered ``command`` keeps its program
and its number of arguments, or the run is refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops.errors import ConfigError, RemediationError
from aiops.model import Alert
from app.settings import load_settings
from remediation.param_guards import render_step
from remediation.playbook import parse_playbook

SECRET = "hyp-SECRET-4a1f"
SECTIONS = ["store", "agent", "alerting", "remediation", "dashboard", "collect", "detect", "bogus"]
KEYS = ["api_token", "tokens", "listen_host", "listen_port", "webhook_url", "receivers", "broker_url", "path",
        "users", "password_hash", "playbooks", "rules", "read_timeout_s", "name", "role", "token", "type", "x"]
SECRET_KEYS = ["api_token", "token", "webhook_url", "broker_url", "password_hash", "session_secret", "headers"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.just("${env:HYP_UNSET_VAR}"))
# the marker only ever sits under a secret key (as a value, a list or a mapping of them): it must never be echoed
secrets_at = st.dictionaries(st.sampled_from(SECRET_KEYS), st.one_of(
    st.just(SECRET), st.lists(st.just(SECRET), max_size=2), st.dictionaries(st.text(max_size=5), st.just(SECRET),
                                                                            max_size=2)), min_size=1, max_size=2)
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), secrets_at,
                                                      st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                     max_leaves=12)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.dictionaries(st.sampled_from(SECTIONS), trees, max_size=3))
def test_config_loader_answers_settings_or_a_config_error(doc: dict[str, Any]) -> None:
    try:
        load_settings(None, **doc)
    except ConfigError as exc:
        assert SECRET not in str(exc)


steps = st.fixed_dictionaries({"action": st.sampled_from(["http", "command", "k8s_scale", "notify", "nope"]),
                               "params": st.dictionaries(st.sampled_from(["request", "argv", "url", "replicas",
                                                                          "name", "headers", "receiver"]),
                                                         trees, max_size=3)})


@FAST
@given(st.fixed_dictionaries({"name": st.text(max_size=10), "trigger": trees,
                              "steps": st.lists(steps, max_size=2)}))
def test_playbook_loader_answers_a_playbook_or_a_config_error(doc: dict[str, Any]) -> None:
    try:
        parse_playbook(doc, "hyp.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("hyp.yaml")


label_values = st.text(max_size=40)


@FAST
@given(label_values, label_values)
def test_rendered_http_action_keeps_scheme_host_and_port(instance: str, node: str) -> None:
    params = {"request": {"url": "https://drain.svc:8443/admin/{{ $labels.instance }}/x?node={{ $labels.node }}",
                          "method": "POST", "headers": {"Authorization": "Bearer t"}}}
    alert = Alert.of({"alertname": "A", "instance": instance, "node": node})
    try:
        out = render_step("http", params, alert)
    except RemediationError:
        return  # refused: nothing is sent
    parts = urlsplit(out["request"]["url"])
    assert (parts.scheme, parts.hostname, parts.port) == ("https", "drain.svc", 8443)
    assert parts.path.startswith("/admin/") and parts.path.endswith("/x") and parts.path.count("/") == 3
    assert out["request"]["headers"] == {"Authorization": "Bearer t"}


@FAST
@given(label_values)
def test_rendered_command_keeps_its_program_and_arguments(value: str) -> None:
    params = {"argv": ["/usr/bin/kubectl", "drain", "{{ $labels.node }}"]}
    try:
        out = render_step("command", params, Alert.of({"alertname": "A", "node": value}))
    except RemediationError:
        return
    assert out["argv"][:2] == ["/usr/bin/kubectl", "drain"] and len(out["argv"]) == 3
    assert out["argv"][2] == value and not value.startswith("-")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in value)
