"""Installing is one honest step: every package our code imports is declared in pyproject.toml.

The runtime packages' imports must be in ``[project] dependencies`` (``pip install -e .`` gives
a working agent); the tests' may also come from the ``test`` extra. A dependency that only
arrives as someone else's dependency is not declared: the day it stops arriving, we break.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())
OURS = set(CONFIG["tool"]["importlinter"]["root_packages"]) | {"tests", "benchmarks", "conftest"}
# Test helpers imported by bare name (tests/remediation is on sys.path for them).
LOCAL = {p.stem for p in REPO.glob("tests/**/*.py")}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in requirements}


def _imports(paths: list[Path]) -> dict[str, str]:
    """Top-level module -> one file importing it, for every third-party import under ``paths``."""
    found: dict[str, str] = {}
    for path in paths:
        for f in [path] if path.is_file() else sorted(path.rglob("*.py")):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS | LOCAL and not top.startswith("_"):
                        found.setdefault(top, str(f.relative_to(REPO)))
    return found


def _undeclared(paths: list[Path], allowed: set[str]) -> list[str]:
    owners = md.packages_distributions()
    missing = []
    for top, where in sorted(_imports(paths).items()):
        dists = {_norm(d) for d in owners.get(top, [])}
        if not dists & allowed:
            missing.append(f"{top} (imported in {where}; distribution {sorted(dists) or 'not installed'})")
    return missing


def test_runtime_imports_are_declared_dependencies() -> None:
    packages = [REPO / p for p in CONFIG["tool"]["importlinter"]["root_packages"]]
    missing = _undeclared(packages, _declared(CONFIG["project"]["dependencies"]))
    assert missing == [], "declare in [project] dependencies: " + "; ".join(missing)


def test_test_imports_are_declared() -> None:
    project = CONFIG["project"]
    allowed = _declared(project["dependencies"]) | _declared(project["optional-dependencies"]["test"])
    missing = _undeclared([REPO / "tests", REPO / "conftest.py"], allowed)
    assert missing == [], "declare in the test extra: " + "; ".join(missing)
