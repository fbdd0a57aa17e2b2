"""bandit over every package: no finding that is neither fixed nor justified inline (``# nosec <id>``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.test_static import PACKAGES


def test_bandit_has_no_unjustified_findings() -> None:
    pytest.importorskip("bandit", reason="bandit not installed (pip install -e '.[test]')")
    out = subprocess.run([sys.executable, "-m", "bandit", "-r", *PACKAGES, "-c", "pyproject.toml", "-f", "json",
                          "-q", "--severity-level", "medium"],
                         cwd=REPO, text=True, capture_output=True, timeout=600)
    report = json.loads(out.stdout)
    found = [f"{r['filename']}:{r['line_number']}: {r['test_id']} ({r['issue_severity']}) {r['issue_text']}"
             for r in report["results"]]
    assert not found, "\n".join(found)
    assert not report["errors"], report["errors"]
