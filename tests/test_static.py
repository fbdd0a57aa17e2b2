"""The code passes ruff and mypy --strict (STYLE.md: everything public is strictly typed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["aiops", "collectors", "detectors", "alerting", "remediation", "dashboard", "rca", "app"]


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install -e '.[test]')")
def test_ruff_is_clean() -> None:
    out = subprocess.run(["ruff", "check", "--output-format", "concise", "."], cwd=REPO, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:]


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    pytest.importorskip("mypy", reason="mypy not installed (pip install -e '.[test]')")
    out = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=REPO, text=True, capture_output=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-4000:]
