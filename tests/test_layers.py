"""The layers hold: ``lint-imports`` keeps the contracts in ``pyproject.toml`` (docs/ARCHITECTURE.md, "Layers")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
# Top-level folders with an __init__.py that are not packages of the product.
NOT_PRODUCT = {"tests", "benchmarks"}


def _contract(kind: str) -> dict[str, object]:
    (found,) = [c for c in CONFIG["contracts"] if c["type"] == kind]
    return found  # type: ignore[no-any-return]


def test_every_package_of_ours_is_under_a_contract() -> None:
    """A new top-level package cannot escape the contracts by not being listed."""
    ours = {p.parent.name for p in REPO.glob("*/__init__.py")} - NOT_PRODUCT
    assert ours == set(CONFIG["root_packages"]), "add the package to [tool.importlinter] in pyproject.toml"
    layered = {m.strip() for layer in _contract("layers")["layers"] for m in layer.replace("|", ":").split(":")}
    assert layered == ours
    features = set(_contract("independence")["modules"])
    assert features == ours - {"aiops", "dashboard", "app"}


# Next to this interpreter first (a venv that is not activated), then on PATH.
_LINT = Path(sys.executable).parent / "lint-imports"
LINT_IMPORTS = str(_LINT) if _LINT.exists() else shutil.which("lint-imports")


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter not installed (pip install -e '.[test]')")
def test_lint_imports_keeps_every_contract() -> None:
    assert LINT_IMPORTS is not None
    exe = LINT_IMPORTS
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([exe, "--no-cache"], cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert "0 broken" in out.stdout
