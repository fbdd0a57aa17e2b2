"""Each feature package's lazy exports are the objects they name, whatever was imported first.

`rca.localize` is a function exported by `rca` and also the name of its module `rca/localize.py`;
Python binds a submodule onto its package when it is first imported, so without care
`from rca import localize` gave the module once anything had imported `rca.localize` itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import importlib, pkgutil
bad = []
for name in ("alerting", "collectors", "detectors", "remediation", "rca"):
    pkg = importlib.import_module(name)
    exports = dict(getattr(pkg, "_EXPORTS", None) or getattr(pkg, "_LAZY"))
    for info in pkgutil.iter_modules(pkg.__path__):  # every submodule first, then the exports
        if info.name not in ("lstm",):  # torch: slow to import, and it exports nothing that collides
            importlib.import_module(f"{name}.{info.name}")
    for export, target in exports.items():
        module, attr = (target, export) if isinstance(target, str) else target
        if getattr(pkg, export) is not getattr(importlib.import_module(module), attr):
            bad.append(f"{name}.{export}")
print(",".join(bad) or "ok")
"""


def test_exports_are_the_named_objects_after_their_submodules_were_imported() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok", f"exports shadowed by a module: {out.stdout.strip()}"
