from __future__ import annotations

from pathlib import Path

import pytest

from aiops.config import parse_duration_s
from aiops.errors import ConfigError
from app.settings import EXAMPLE_CONFIG, load_settings
from tests.conftest import run_cli


def test_defaults_load_without_a_file() -> None:
    s = load_settings()
    assert s.collect.host.enabled and s.store.path.name == "aiops.db"


def test_example_config_is_valid(tmp_path: Path) -> None:
    p = tmp_path / "aiops.yaml"
    p.write_text(EXAMPLE_CONFIG)
    assert load_settings(p).remediation.dry_run is True


def test_wrong_type_names_file_key_and_expectation(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("collect:\n  host:\n    interval_s: soon\n")
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    msg = str(err.value)
    assert "collect.host.interval_s" in msg and "bad.yaml" in msg and "duration" in msg and "soon" in msg


def test_unknown_key_is_named(tmp_path: Path) -> None:
    p = tmp_path / "typo.yaml"
    p.write_text("store:\n  paht: x.db\n")
    with pytest.raises(ConfigError, match=r"store\.paht: unknown key \(.*typo.yaml\)"):
        load_settings(p)


def test_list_item_errors_carry_the_index(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("collect:\n  scrape:\n    - url: http://a/metrics\n    - job: b\n")
    with pytest.raises(ConfigError, match=r"collect\.scrape\[1\]\.url: Field required"):
        load_settings(p)


def test_environment_overrides_file_and_is_named_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("agent:\n  listen_port: 1000\n")
    monkeypatch.setenv("AIOPS_AGENT__LISTEN_PORT", "2000")
    assert load_settings(p).agent.listen_port == 2000
    monkeypatch.setenv("AIOPS_AGENT__LISTEN_PORT", "many")
    with pytest.raises(ConfigError, match="environment AIOPS_AGENT__LISTEN_PORT"):
        load_settings(p)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("store:\n  path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"c.yaml line \d+: not valid YAML"):
        load_settings(p)


def test_secrets_are_masked_in_settings_repr(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("agent:\n  api_token: hunter2-secret\n")
    s = load_settings(p)
    assert "hunter2" not in repr(s) and s.agent.api_token is not None
    assert s.agent.api_token.get_secret_value() == "hunter2-secret"


def test_durations() -> None:
    assert parse_duration_s("5m") == 300 and parse_duration_s("1h30m") == 5400 and parse_duration_s("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration_s("soon")


def test_cli_init_writes_a_valid_config_and_bad_config_is_one_line(tmp_path: Path) -> None:
    out = run_cli("init", str(tmp_path / "aiops.yaml"))
    assert out.returncode == 0, out.stderr
    assert load_settings(tmp_path / "aiops.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agent:\n  listen_port: abc\n")
    res = run_cli("run", "--config", str(bad), "--duration-s", "1")
    assert res.returncode == 1
    assert "agent.listen_port" in res.stderr and "bad.yaml" in res.stderr
    assert "Traceback" not in res.stderr
